"""A whole-graph run in a fresh interpreter, so that its peak memory is its own.

    python -m benchmarks.child --data-dir DIR (--instance-dir DIR | --dagster-home)
                               [--quick | --publish]

Runs every day of the landscape in `DIR` as ONE run (what a backfill launches) and prints one
JSON line: the seconds the run took inside the process (interpreter start-up and imports
excluded; the parent measures the wall time around it), its step time by kind, and the peak
resident set of this process or its dbt subprocesses (`harness.peak_rss_bytes`). With
`--publish` the run also covers the quarantine asset and the analyst snapshot: the deployment's
whole graph, as a steady state built before the daemon starts.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--instance-dir", type=Path, help="a new SQLite instance here")
    where.add_argument("--dagster-home", action="store_true", help="the $DAGSTER_HOME instance")
    graph = parser.add_mutually_exclusive_group()
    graph.add_argument("--quick", action="store_true", help="the quick-mode graph")
    graph.add_argument("--publish", action="store_true", help="also quarantine and snapshot")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    from benchmarks.harness import (
        Pipeline,
        demo_apis,
        environment,
        landscape_days,
        peak_rss_bytes,
    )

    data_dir = args.data_dir.resolve()
    days = landscape_days(json.loads((data_dir / "landscape.json").read_text()))
    with environment(BATCH_PLATFORM_DATA_DIR=str(data_dir)):
        if args.dagster_home:
            pipeline = Pipeline(instance=DagsterInstance.get(), publish=args.publish)
        else:
            pipeline = Pipeline(args.instance_dir.resolve(), publish=args.publish)
        with demo_apis(data_dir):
            started = time.perf_counter()
            result = pipeline.run(days, whole=not args.quick)
            seconds = time.perf_counter() - started
        split = pipeline.split(result.run_id)
        print(json.dumps({"seconds": seconds, **split, "peak_rss_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
