"""Incremental cost: processing one new day must not grow with the days already processed.

Two landscapes that differ only in how much history they hold (full: 7 and 180 days), each
built up front by hand and not timed: the extractors in a loop, one bare `dbt build` of the
whole history. Then, per repeat, the simulator appends one day to each (not timed) and the
platform processes it as the daily path does: ONE run of the graph for the new day. Short and
long take turns, so a busy spell on the machine hits both alike.

Target: the new day with 180 days of history <= 1.5x the new day with 7 days.

The run is split by its event log: the extracts read only the day's files; the partitioned dbt
models replace exactly the day's window; the whole-table models (current-state staging tables,
dimensions) are rebuilt whole by design, so their work does grow with history. Each part's
ratio is reported next to the headline.
"""

from __future__ import annotations

from benchmarks.harness import (
    BENCH_START,
    Context,
    Pipeline,
    bare_build,
    bare_extract,
    check,
    dbt_target,
    demo_apis,
    environment,
    landscape_days,
    log,
    measurement,
    median_ratio,
    simulate_landscape,
    timed,
)

NAME = "incremental"
TITLE = "Incremental: one new day with short vs long history"
TARGET_RATIO = 1.5
PARTS = {
    "extract": "extract steps",
    "dbt_partitioned": "partitioned dbt step",
    "dbt_whole_tables": "whole-table dbt steps",
    "dbt_to_first_result": "dbt steps until dbt's first model result",
}


def _build_history(ctx: Context, pipeline: Pipeline, days: int, scale: float):
    data_dir = ctx.work / f"history-{days}" / "data"
    log(f"incremental: building {days} days of history at scale {scale} (not timed)")
    _, manifest = simulate_landscape(data_dir, BENCH_START, days, scale)
    history = landscape_days(manifest)
    with environment(BATCH_PLATFORM_DATA_DIR=str(data_dir)), demo_apis(data_dir):
        bare_extract(data_dir, history)
    models = None if ctx.whole else pipeline.dbt_models(whole=False)
    bare_build(data_dir, ctx.work, history, models)
    return data_dir, dbt_target(data_dir, seed=ctx.whole)


def _new_day(ctx: Context, pipeline: Pipeline, data_dir, target) -> tuple[float, dict]:
    """Append a day to the landscape, then process it in one run; (seconds, split)."""
    from batch_platform.simulator import simulate

    day = landscape_days(simulate(data_dir, None, 1, append=True))[-1]
    env = {"BATCH_PLATFORM_DATA_DIR": str(data_dir), **target}
    with environment(**env), demo_apis(data_dir):
        seconds, result = timed(lambda: pipeline.run([day], ctx.whole))
    split = pipeline.split(result.run_id)
    split["dbt_to_first_result"] = pipeline.dbt_phases(result.run_id)["to_first_result"]
    return seconds, split


def run(ctx: Context) -> dict:
    (short, long), scale, repeats = ctx.pick(full=((7, 180), 0.02, 3), quick=((1, 3), 0.01, 1))
    pipeline = Pipeline(ctx.work / "instance")
    folders = {days: _build_history(ctx, pipeline, days, scale) for days in (short, long)}
    totals: dict[int, list[float]] = {short: [], long: []}
    parts: dict[int, dict[str, list[float]]] = {short: {}, long: {}}
    for repeat in range(repeats):
        for days in (short, long) if repeat % 2 == 0 else (long, short):
            log(f"incremental: new day after {days} days of history ({repeat + 1}/{repeats})")
            seconds, split = _new_day(ctx, pipeline, *folders[days])
            totals[days].append(seconds)
            for part, value in split.items():
                parts[days].setdefault(part, []).append(value)

    measurements = {}
    for days in (short, long):
        measurements[f"new_day_{days}_seconds"] = measurement(
            f"new day, {days} days of history: the run", totals[days], "s"
        )
        for part, label in PARTS.items():
            if any(parts[days][part]):
                measurements[f"{part}_{days}_seconds"] = measurement(
                    f"  {label}", parts[days][part], "s"
                )
    checks = [
        check(
            f"new day with {long} days of history / with {short}",
            median_ratio(totals[long], totals[short]),
            f"one run of the {Pipeline.graph_name(ctx.whole)} for a new day, long history "
            "divided by short (median of per-repeat ratios)",
            target=TARGET_RATIO,
            direction="<=",
        )
    ]
    for part, label in PARTS.items():
        if any(parts[short][part]):
            checks.append(
                check(
                    f"{label}: {long} / {short} days of history",
                    median_ratio(parts[long][part], parts[short][part]),
                    f"the {label} alone (median of per-repeat ratios)",
                )
            )
    return {
        "parameters": {
            "history_days": [short, long],
            "scale": scale,
            "repeats": repeats,
            "graph": Pipeline.graph_name(ctx.whole),
        },
        "measurements": measurements,
        "checks": checks,
    }
