"""The platform on Apache Spark, in a process of its own (run by tests/test_spark_warehouse.py).

The engine is chosen when `batch_platform.definitions` loads (BATCH_PLATFORM_WAREHOUSE), once
per process, so a test process that already loaded the DuckDB definitions builds on Spark here.
It prints one JSON line: what it did and when its dbt step ran (for the overlap of two runs).

    python tests/spark_build.py <data> build <day> <day> ...   # support.build_pipeline + publish
    python tests/spark_build.py <data> day <day>               # the partitioned models, one day
    python tests/spark_build.py <data> publish-day <day>       # everything above extracts, one day
"""

import json
import sys
import time
from pathlib import Path

import dagster as dg
from support import build_pipeline

# In memory, as dg.materialize's own, but kept: the step timings are read back from its log.
INSTANCE = dg.DagsterInstance.ephemeral()


def _materialize(selected, **kwargs) -> dg.ExecuteInProcessResult:
    """`selected` assets materialised as build_pipeline does, over the whole graph."""
    from batch_platform.definitions import defs, extracts, transforms

    return dg.materialize(
        [*extracts, *transforms],
        resources={"dbt": defs.resources["dbt"]},
        selection=dg.AssetSelection.assets(*selected),
        raise_on_error=False,
        instance=INSTANCE,
        **kwargs,
    )


def main(data: Path, action: str, days: list[str]) -> dict:
    from batch_platform.definitions import (
        analytics_snapshot,
        dbt_partitioned_models,
        dbt_whole_tables,
        engine,
    )

    started = time.time()
    if action == "build":
        build_pipeline(data, days)
        result = _materialize([analytics_snapshot])
    elif action == "day":
        result = _materialize([dbt_partitioned_models], partition_key=days[0])
    elif action == "publish-day":
        steps = [dbt_partitioned_models, dbt_whole_tables, analytics_snapshot]
        result = _materialize(steps, partition_key=days[0])
    else:
        raise SystemExit(f"unknown action {action}")
    failures = [
        event.event_specific_data.error.message
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    ]
    steps = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in INSTANCE.all_logs(result.run_id)
        if entry.dagster_event and entry.dagster_event.step_key == dbt_partitioned_models.op.name
    }
    return {
        "engine": engine.name,
        "pools": {
            step.op.name: step.op.pool for step in (dbt_partitioned_models, dbt_whole_tables)
        },
        "dbt_step": [steps.get("STEP_START"), steps.get("STEP_SUCCESS", steps.get("STEP_FAILURE"))],
        "success": result.success,
        "failures": failures,
        "started": started,
        "finished": time.time(),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])))
