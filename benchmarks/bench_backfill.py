"""Backfill: N days of the whole graph as ONE run, against N single-day runs and by hand.

Three ways to build the same N days of one landscape, in process:

- **one run** (`Pipeline.run` over the range): what a backfill with `BackfillPolicy.single_run()`
  launches: each extract walks its days, each dbt selection (the partitioned models, then the
  whole tables) is ONE dbt invocation for the whole range; from an empty lake and warehouse;
  then the same run with Dagster's storage on PostgreSQL, for the price of its event log;
- **N single-day runs**: the same graph once per day, as a per-partition backfill or a daily
  job would, after the one run (over its lake and warehouse, as a day-by-day backfill's later
  days would find them). One such run costs many seconds whatever the day's volume (two
  dbt invocations), so N = 90 of them would take over an hour: a sample of k days spread over
  the range is run and the total extrapolated (mean x N); the results say so;
- **by hand**: the extractor functions in a plain loop (no Dagster), then one bare `dbt build`
  of the same window in a subprocess: the same work with no orchestration.

Targets: one run >= 10x faster than N single-day runs; one run <= 2x the bare `dbt build`. The
latter is read two ways, both reported: the run's dbt steps against the bare `dbt build` (the
same models over the same lake), and the whole run against the whole work by hand (extraction
included on both sides). And a single-day run's dbt steps <= 2x a bare `dbt build` of that
day, measured right after each sampled single-day run.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from benchmarks.harness import (
    BENCH_START,
    Context,
    Pipeline,
    bare_build,
    bare_dbt,
    bare_extract,
    check,
    dbt_target,
    demo_apis,
    environment,
    fresh_folder,
    landscape_days,
    log,
    measurement,
    reset_outputs,
    run_process,
    simulate_landscape,
    timed,
)

NAME = "backfill"
TITLE = "Backfill: one run vs N single-day runs vs by hand"
TARGET_SPEEDUP = 10.0
TARGET_OVERHEAD = 2.0


def sample_days(days: list[str], k: int) -> list[str]:
    """k days spread evenly over the range (first and last included when k >= 2)."""
    if k >= len(days):
        return list(days)
    if k == 1:
        return [days[len(days) // 2]]
    return [days[round(i * (len(days) - 1) / (k - 1))] for i in range(k)]


def one_run_on_postgres(ctx: Context, data_dir: Path, days: list[str], target: dict) -> dict:
    """The same one run with Dagster's storage on PostgreSQL (deploy/dagster.production.yaml,
    a scratch database dropped afterwards) instead of the embedded SQLite.

    Returns the run's seconds, its planned-materialization phase and its steps, or, when no
    PostgreSQL server answers, `{"unavailable": reason}`.
    """
    import dagster as dg

    from benchmarks.postgres_storage import PostgresUnavailable, fresh_database, production_home

    try:
        with (
            fresh_database("bp_bench") as storage,
            environment(**storage, **target),
            demo_apis(data_dir),
        ):
            home = production_home(fresh_folder(ctx.work / "postgres_home"), storage)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                pipeline = Pipeline(instance=instance)
                reset_outputs(data_dir)
                seconds, result = timed(lambda: pipeline.run(days, ctx.whole))
                split = pipeline.split(result.run_id)
                before_start, planned = pipeline.before_start(result.run_id)
    except PostgresUnavailable as error:
        return {"unavailable": str(error)}
    return {
        "seconds": seconds,
        "before_start": before_start,
        "planned": planned,
        "extract": split["extract"],
        "dbt": split["dbt_partitioned"] + split["dbt_whole_tables"],
    }


def run(ctx: Context) -> dict:
    days_count, scale, k = ctx.pick(full=(90, 0.02, 3), quick=(2, 0.01, 1))
    data_dir = ctx.work / "data"
    log(f"backfill: simulating {days_count} days at scale {scale}")
    simulate_seconds, manifest = simulate_landscape(data_dir, BENCH_START, days_count, scale)
    days = landscape_days(manifest)
    sample = sample_days(days, k)
    pipeline = Pipeline(ctx.work / "instance")
    models = None if ctx.whole else pipeline.dbt_models(whole=False)
    target = dbt_target(data_dir, seed=ctx.whole)

    log("backfill: by hand (extractors in a loop, then one bare dbt build)")
    reset_outputs(data_dir)
    with demo_apis(data_dir):
        hand_extract, _ = timed(lambda: bare_extract(data_dir, days))
    hand_dbt = bare_build(data_dir, ctx.work, days, models)

    log(f"backfill: one run of {days_count} days")
    reset_outputs(data_dir)
    with environment(**target), demo_apis(data_dir):
        one_run, result = timed(lambda: pipeline.run(days, ctx.whole))
        split = pipeline.split(result.run_id)
        before_start, planned = pipeline.before_start(result.run_id)
        phases = pipeline.dbt_phases(result.run_id)
        one_run_dbt = split["dbt_partitioned"] + split["dbt_whole_tables"]

        single, single_dbt, bare_single = [], [], []
        for number, day in enumerate(sample, start=1):
            log(f"backfill: single-day run {number}/{len(sample)} ({day})")
            seconds, day_result = timed(lambda day=day: pipeline.run([day], ctx.whole))
            single.append(seconds)
            day_split = pipeline.split(day_result.run_id)
            single_dbt.append(day_split["dbt_partitioned"] + day_split["dbt_whole_tables"])
            # The same day by hand, right after: the same models over the same lake.
            bare_single.append(bare_build(data_dir, ctx.work, [day], models))
    postgres = {} if ctx.quick else one_run_on_postgres(ctx, data_dir, days, target)
    n_runs = statistics.mean(single) * days_count
    how = (
        f"extrapolated: mean of {len(sample)} single-day runs x {days_count}"
        if len(sample) < days_count
        else f"all {days_count} single-day runs"
    )

    measurements = {
        "one_run_seconds": measurement(f"one run of {days_count} days", [one_run], "s"),
        "one_run_before_start_seconds": measurement(
            "  of which before the run started (planned-materialization events)",
            [before_start],
            "s",
        ),
        "one_run_extract_seconds": measurement("  of which extract steps", [split["extract"]], "s"),
        "one_run_dbt_seconds": measurement("  of which dbt steps", [one_run_dbt], "s"),
        "one_run_dbt_to_first_result_seconds": measurement(
            "    dbt steps until dbt's first model result (set-up, start-up, parse)",
            [phases["to_first_result"]],
            "s",
        ),
        "one_run_dbt_results_seconds": measurement(
            "    dbt steps from first to last result (models, tests, materializations recorded)",
            [phases["results"]],
            "s",
        ),
        "single_day_run_seconds": measurement("one single-day run", single, "s"),
        "single_day_dbt_seconds": measurement("  of which dbt steps", single_dbt, "s"),
        "bare_single_day_dbt_seconds": measurement(
            "bare `dbt build` of one day (same models, same lake)", bare_single, "s"
        ),
        "n_runs_seconds": measurement(f"{days_count} single-day runs ({how})", [n_runs], "s"),
        "by_hand_seconds": measurement(
            "by hand: extract loop + bare dbt build", [hand_extract + hand_dbt], "s"
        ),
        "hand_extract_seconds": measurement("  extract loop (no Dagster)", [hand_extract], "s"),
        "bare_dbt_seconds": measurement("  bare `dbt build` of the window", [hand_dbt], "s"),
    }
    checks = []
    if "seconds" in postgres:
        measurements |= {
            "pg_one_run_seconds": measurement(
                "one run, Dagster storage on PostgreSQL", [postgres["seconds"]], "s"
            ),
            "pg_before_start_seconds": measurement(
                "  of which before the run started", [postgres["before_start"]], "s"
            ),
            "pg_extract_seconds": measurement(
                "  of which extract steps", [postgres["extract"]], "s"
            ),
            "pg_dbt_seconds": measurement("  of which dbt steps", [postgres["dbt"]], "s"),
        }
        checks = [
            check(
                "planned-materialization phase: PostgreSQL / SQLite storage",
                postgres["before_start"] / before_start,
                "seconds before the one run started (its planned-materialization events), with "
                "Dagster's storage on PostgreSQL divided by the same on SQLite (issue #17)",
                target=0.5,
                direction="<=",
            ),
            check(
                "dbt steps of the run on PostgreSQL storage / bare dbt build",
                postgres["dbt"] / hand_dbt,
                "the same dbt steps with Dagster's event log on PostgreSQL instead of SQLite",
            ),
            check(
                "one run on PostgreSQL storage / the same work by hand",
                postgres["seconds"] / (hand_extract + hand_dbt),
                "the whole run with Dagster's storage on PostgreSQL, divided by the work by hand",
            ),
        ]
    if not ctx.quick:
        # What every dbt invocation pays before it builds anything, for the reading: start-up
        # plus a full parse (partial parsing is dropped whenever the window vars change), and
        # the `dbt --version` dagster-dbt runs once per run (dbt asks PyPI for new releases).
        dbt = str(Path(sys.executable).with_name("dbt"))
        measurements["dbt_parse_seconds"] = measurement(
            "bare `dbt parse --no-partial-parse`",
            [bare_dbt(data_dir, ctx.work, ["parse", "--no-partial-parse"])],
            "s",
        )
        measurements["dbt_version_seconds"] = measurement(
            "bare `dbt --version`", [run_process([dbt, "--version"])[0]], "s"
        )
    return {
        "parameters": {
            "days": days_count,
            "scale": scale,
            "graph": Pipeline.graph_name(ctx.whole),
            "sampled_single_day_runs": sample,
            "sources": len(pipeline.extracts),
            "partitions_extracted": len(pipeline.extracts) * days_count,
        },
        "measurements": measurements,
        "checks": [
            check(
                f"{days_count} single-day runs / one run",
                n_runs / one_run,
                f"{days_count} single-day runs ({how}) divided by one run over the range",
                target=TARGET_SPEEDUP,
            ),
            check(
                "dbt steps of the run / bare dbt build",
                one_run_dbt / hand_dbt,
                "the run's dbt steps (from its event log) divided by one bare `dbt build` of "
                "the same models and window over the same lake",
                target=TARGET_OVERHEAD,
                direction="<=",
            ),
            check(
                "dbt steps of a single-day run / bare single-day dbt build",
                statistics.median(single_dbt) / statistics.median(bare_single),
                "median over the sampled days of a single-day run's dbt steps divided by the "
                "median bare `dbt build` of the same models for one day",
                target=TARGET_OVERHEAD,
                direction="<=",
            ),
            check(
                "one run / the same work by hand",
                one_run / (hand_extract + hand_dbt),
                "the whole run divided by the extractors in a plain loop plus one bare "
                "`dbt build` of the same window",
                target=TARGET_OVERHEAD,
                direction="<=",
            ),
            *checks,
        ],
        "info": {
            "simulate_seconds": round(simulate_seconds, 2),
            "planned_events": planned,
            "dbt_materializations_recorded": phases["materializations"],
        },
        "notes": ([how] if len(sample) < days_count else [])
        + ([postgres["unavailable"]] if "unavailable" in postgres else []),
    }
