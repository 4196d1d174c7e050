"""The reference for the backfill test: the dbt models built one day at a time, as daily runs do.

    python tests/dbt_day_by_day.py FIRST_DAY DAYS

Builds the warehouse of `$BATCH_PLATFORM_DATA_DIR` from its raw lake in the order the platform's
single-day runs take: the current-state staging tables, then each day's staging partitions, then
each day's other incremental models (they read neighbouring staging days), then the whole-table
models. Each day is its own `dbt run` with the half-open window as `--vars` (`vars_args`): the
same window the Dagster assets pass through the environment, the other way dbt accepts it.

It runs dbt in process with the manifest parsed once (`dbtRunner(manifest=...)`): a dbt
subprocess per day re-parses the project each time (~5 s here), and 60 single-day builds would
not fit the test suite's budget. What is compared is the models' per-window logic, which is
the same whichever way dbt is started. Tests are not run (`dbt run`): they do not change tables.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta

from dbt.cli.main import dbtRunner

from batch_platform.paths import DBT_PROJECT_DIR
from batch_platform.transform.dbt_vars import vars_args

# (select, exclude, one run per day?)
STAGING = "path:models/staging"
STEPS = (
    (f"{STAGING},config.materialized:table", None, False),
    (f"{STAGING},config.materialized:incremental", None, True),
    ("config.materialized:incremental", STAGING, True),
    ("config.materialized:table", STAGING, False),
)


def main(first: str, days: int, target: str) -> int:
    common = ["--quiet", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir"]
    common += [str(DBT_PROJECT_DIR), "--target-path", target]
    parsed = dbtRunner().invoke(["parse", *common])
    if not parsed.success:
        raise SystemExit(f"dbt parse failed: {parsed.exception}")
    runner = dbtRunner(manifest=parsed.result)
    start = date.fromisoformat(first)
    for select, exclude, per_day in STEPS:
        windows = [None]
        if per_day:
            windows = [
                (
                    datetime.combine(start + timedelta(days=i), datetime.min.time()),
                    datetime.combine(start + timedelta(days=i + 1), datetime.min.time()),
                )
                for i in range(days)
            ]
        for window in windows:
            args = ["run", *vars_args(window), "--select", select, *common]
            if exclude:
                args += ["--exclude", exclude]
            result = runner.invoke(args)
            if not result.success:
                raise SystemExit(f"dbt {' '.join(args)} failed: {result.exception}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
