"""Scaling: end-to-end time and peak memory at 1x, 4x and 16x the daily volume.

The same days at three `scale` values (the simulator's volume multiplier: sessions, orders,
events, customers; the catalog and campaigns stay fixed). For each, the whole graph runs over
the days as one run, in a fresh interpreter (`benchmarks.child`) so its peak RSS is its own;
simulation is not timed. The points take turns across repeats.

Target: end-to-end time grows no faster than linearly with volume, i.e. the time per record
at 16x is at most the time per record at 1x. Fixed costs (dbt start-up and parse, a scratch
database per extracted file) make it fall as volume rises.

Peak RSS is the largest resident set of the run's process or of its dbt subprocesses, as the
process reports it about itself (`harness.peak_rss_bytes`); not their sum.
"""

from __future__ import annotations

import statistics

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
    simulate_landscape,
)

NAME = "scaling"
TITLE = "Scaling: end-to-end time and memory at 1x, 4x, 16x volume"
MULTIPLIERS = (1, 4, 16)


def records(manifest: dict) -> int:
    """What the extracts read: every landing line of the event sources, every table row."""
    total = 0
    for source in manifest["sources"].values():
        totals = source["totals"]
        total += totals.get("lines", totals.get("rows", 0))
    return total


def run(ctx: Context) -> dict:
    base, days, repeats = ctx.pick(full=(2.0, 2, 2), quick=(0.01, 1, 1))
    points = []
    for multiplier in MULTIPLIERS:
        scale = round(base * multiplier, 4)
        data_dir = ctx.work / f"x{multiplier}" / "data"
        log(f"scaling: {multiplier}x, simulating {days} day(s) at scale {scale}")
        _, manifest = simulate_landscape(data_dir, BENCH_START, days, scale)
        target = dbt_target(data_dir, seed=ctx.whole)
        points.append(
            {"multiplier": multiplier, "scale": scale, "data_dir": data_dir, "target": target}
            | {"records": records(manifest), "seconds": [], "dbt": [], "peak": [], "process": []}
        )
    for repeat in range(repeats):
        for p in points if repeat % 2 == 0 else reversed(points):
            log(f"scaling: {p['multiplier']}x, repeat {repeat + 1}/{repeats}")
            reset_outputs(p["data_dir"])
            instance = fresh_folder(ctx.work / f"x{p['multiplier']}" / "instance")
            seconds, output = run_child(
                ["benchmarks.child", "--data-dir", str(p["data_dir"])]
                + ["--instance-dir", str(instance)]
                + (["--quick"] if ctx.quick else []),
                env={"BATCH_PLATFORM_DATA_DIR": str(p["data_dir"]), **p["target"]},
            )
            p["process"].append(seconds)
            p["seconds"].append(output["seconds"])
            p["dbt"].append(output["dbt_partitioned"] + output["dbt_whole_tables"])
            p["peak"].append(output["peak_rss_bytes"] / 2**20)

    measurements = {}
    for p in points:
        m = p["multiplier"]
        measurements[f"x{m}_seconds"] = measurement(
            f"{m}x (scale {p['scale']}, {p['records']:,} records): the run", p["seconds"], "s"
        )
        measurements[f"x{m}_dbt_seconds"] = measurement("  of which dbt steps", p["dbt"], "s")
        measurements[f"x{m}_process_seconds"] = measurement(
            "  the whole process (start-up and imports included)", p["process"], "s"
        )
        measurements[f"x{m}_ms_per_1k_records"] = measurement(
            "  run time per 1,000 records",
            [1e6 * s / p["records"] for s in p["seconds"]],
            "ms",
            1,
        )
        measurements[f"x{m}_peak_rss_mib"] = measurement("  peak RSS", p["peak"], "MiB", 0)

    first, last = points[0], points[-1]
    per_record = [statistics.median(p["seconds"]) / p["records"] for p in points]
    volume = last["records"] / first["records"]
    return {
        "parameters": {
            "base_scale": base,
            "multipliers": list(MULTIPLIERS),
            "days": days,
            "repeats": repeats,
            "records": [p["records"] for p in points],
            "graph": Pipeline.graph_name(ctx.whole),
        },
        "measurements": measurements,
        "checks": [
            check(
                f"time per record at {last['multiplier']}x / at {first['multiplier']}x",
                per_record[-1] / per_record[0],
                "median run seconds per record read; <= 1 means the total grew no faster "
                "than the volume",
                target=1.0,
                direction="<=",
            ),
            check(
                f"run time at {last['multiplier']}x / at {first['multiplier']}x",
                statistics.median(last["seconds"]) / statistics.median(first["seconds"]),
                f"for {volume:.1f}x the records read",
            ),
            check(
                f"peak RSS at {last['multiplier']}x / at {first['multiplier']}x",
                statistics.median(last["peak"]) / statistics.median(first["peak"]),
                "largest resident set of the run or its dbt subprocess",
            ),
        ],
    }
