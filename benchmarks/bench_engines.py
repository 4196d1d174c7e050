"""Warehouse engines: the whole graph on DuckDB and on Apache Spark (local), at 1x and 16x.

The same days at two `scale` values, each built as ONE run of the whole graph in a fresh
interpreter (`benchmarks.child`, as the scaling benchmark does), once with the default engine
and once with BATCH_PLATFORM_WAREHOUSE=spark (Spark in local mode inside each dbt step, on this
machine's two cores). Separately, what a Spark session costs to start: a fresh interpreter
that starts the session `batch-platform-dbt` starts, prepares it and stops, next to one that
only imports pyspark.

No target: the figures say where a Spark cluster would start to pay (docs/BENCHMARKS.md).
Quick mode measures the session start-up only: a Spark build of the graph takes minutes here,
more than the whole quick budget.
"""

from __future__ import annotations

import statistics
import sys

from benchmarks.bench_scaling import records
from benchmarks.harness import (
    BENCH_START,
    Context,
    Pipeline,
    check,
    dbt_target,
    fresh_folder,
    log,
    measurement,
    reset_outputs,
    run_child,
    run_process,
    simulate_landscape,
)

NAME = "engines"
TITLE = "Warehouse engines: DuckDB vs Spark local, 1x and 16x volume"
MULTIPLIERS = (1, 16)
ENGINES = ("duckdb", "spark")

_STARTUP = (
    "import time, tempfile, pathlib\n"
    "started = time.perf_counter()\n"
    "from batch_platform import spark_warehouse as w\n"
    "spark = w.start_session(pathlib.Path(tempfile.mkdtemp()))\n"
    "w.register_functions(spark, b'benchmark-key')\n"
    "spark.sql('select pii_mask(\\'a@b.c\\')').collect()\n"
    "print(time.perf_counter() - started)\n"
    "spark.stop()\n"
)
_IMPORT_ONLY = (
    "import time\nstarted = time.perf_counter()\nimport pyspark.sql\n"
    "print(time.perf_counter() - started)\n"
)


def startup(repeats: int) -> tuple[list[float], list[float]]:
    """(seconds to a prepared Spark session, seconds to import pyspark), per repeat."""
    session, imports = [], []
    for _ in range(repeats):
        _, out = run_process([sys.executable, "-c", _STARTUP])
        session.append(float(out.strip().splitlines()[-1]))
        _, out = run_process([sys.executable, "-c", _IMPORT_ONLY])
        imports.append(float(out.strip().splitlines()[-1]))
    return session, imports


def run(ctx: Context) -> dict:
    base, days, repeats = ctx.pick(full=(0.25, 2, 1), quick=(0.01, 1, 1))
    log("engines: Spark session start-up")
    session, imports = startup(ctx.pick(full=3, quick=1))
    measurements = {
        "spark_session_seconds": measurement(
            "Spark session started and prepared (pii_mask called once)", session, "s"
        ),
        "pyspark_import_seconds": measurement(
            "importing pyspark alone (another process)", imports, "s"
        ),
    }
    checks = [
        check(
            "Spark session start-up",
            statistics.median(session),
            "seconds every dbt step on Spark pays before its first statement",
            unit="s",
        )
    ]
    parameters = {"base_scale": base, "days": days, "repeats": repeats}
    if ctx.quick:
        return {"parameters": parameters, "measurements": measurements, "checks": checks}

    points = []
    for multiplier in MULTIPLIERS:
        scale = round(base * multiplier, 4)
        data_dir = ctx.work / f"x{multiplier}" / "data"
        log(f"engines: {multiplier}x, simulating {days} day(s) at scale {scale}")
        _, manifest = simulate_landscape(data_dir, BENCH_START, days, scale)
        target = dbt_target(data_dir, seed=True)
        for engine in ENGINES:
            points.append(
                {"multiplier": multiplier, "engine": engine, "scale": scale}
                | {"data_dir": data_dir, "target": target, "records": records(manifest)}
                | {"seconds": [], "dbt": [], "peak": []}
            )
    for repeat in range(repeats):
        for p in points if repeat % 2 == 0 else reversed(points):
            log(f"engines: {p['multiplier']}x on {p['engine']}, repeat {repeat + 1}/{repeats}")
            reset_outputs(p["data_dir"])
            instance = fresh_folder(ctx.work / f"x{p['multiplier']}" / "instance")
            _, output = run_child(
                ["benchmarks.child", "--data-dir", str(p["data_dir"])]
                + ["--instance-dir", str(instance)],
                env={
                    "BATCH_PLATFORM_DATA_DIR": str(p["data_dir"]),
                    "BATCH_PLATFORM_WAREHOUSE": p["engine"],
                    **p["target"],
                },
            )
            p["seconds"].append(output["seconds"])
            p["dbt"].append(output["dbt_partitioned"] + output["dbt_whole_tables"])
            p["peak"].append(output["peak_rss_bytes"] / 2**20)

    for p in points:
        key = f"{p['engine']}_x{p['multiplier']}"
        measurements[f"{key}_seconds"] = measurement(
            f"{p['engine']}, {p['multiplier']}x ({p['records']:,} records): the run",
            p["seconds"],
            "s",
        )
        measurements[f"{key}_dbt_seconds"] = measurement("  of which dbt steps", p["dbt"], "s")
        measurements[f"{key}_peak_rss_mib"] = measurement("  peak RSS", p["peak"], "MiB", 0)

    def dbt(engine: str, multiplier: int) -> float:
        return measurements[f"{engine}_x{multiplier}_dbt_seconds"]["median"]

    for multiplier in MULTIPLIERS:
        checks.append(
            check(
                f"dbt steps on Spark / on DuckDB at {multiplier}x",
                dbt("spark", multiplier) / dbt("duckdb", multiplier),
                "the same models, tests and days; Spark local on the same two cores",
            )
        )
    for engine in ENGINES:
        checks.append(
            check(
                f"{engine}: dbt steps at {MULTIPLIERS[-1]}x / at {MULTIPLIERS[0]}x",
                dbt(engine, MULTIPLIERS[-1]) / dbt(engine, MULTIPLIERS[0]),
                f"for {points[-1]['records'] / points[0]['records']:.1f}x the records",
            )
        )
    parameters |= {
        "multipliers": list(MULTIPLIERS),
        "records": [p["records"] for p in points[:: len(ENGINES)]],
        "graph": Pipeline.graph_name(True),
    }
    return {"parameters": parameters, "measurements": measurements, "checks": checks}
