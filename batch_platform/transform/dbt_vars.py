"""dbt arguments built by small pure functions, so they can be unit-tested without dbt.

The partition window reaches dbt as two environment variables, not as `--vars`: dbt keeps its
parse of the project between invocations (partial parsing) only while the vars, the profile
and the target stay the same, so a window passed as `--vars` made every run parse the whole
project again (seconds each time). The macros read the variables only while executing
(`dbt_project/macros/partition_window.sql`), so they never enter the parse. `--vars` still
works by hand, exactly as before: without the variables the macros take the vars.
"""

from __future__ import annotations

import json
from datetime import datetime

# The variables the window macros read at execution; the names are repeated in
# dbt_project/macros/partition_window.sql (a test holds them together).
WINDOW_ENV = {"min_date": "BATCH_PLATFORM_WINDOW_START", "max_date": "BATCH_PLATFORM_WINDOW_END"}

# One `dbt build` per step: the step's selection comes from dagster-dbt, the window from
# `window_environment`.
BUILD_ARGS = ("build",)


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """The half-open day window [start, end) as the vars every incremental model reads."""
    return {"min_date": start.date().isoformat(), "max_date": end.date().isoformat()}


def window_environment(window: tuple[datetime, datetime] | None) -> dict[str, str | None]:
    """The window as the environment of a dbt invocation; None values are to be unset.

    Without a window (the unpartitioned models) the variables are removed, so a value left in
    the calling environment never narrows a whole-table build.
    """
    if window is None:
        return dict.fromkeys(WINDOW_ENV.values())
    return {WINDOW_ENV[name]: value for name, value in partition_vars(*window).items()}


def vars_args(window: tuple[datetime, datetime] | None) -> list[str]:
    """The same window as `--vars`, for dbt run by hand (or by a reference build in a test)."""
    if window is None:
        return []
    return ["--vars", json.dumps(partition_vars(*window), sort_keys=True)]
