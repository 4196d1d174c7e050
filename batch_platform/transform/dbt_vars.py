"""dbt arguments built by small pure functions, so they can be unit-tested without dbt."""

from __future__ import annotations

import json
from datetime import datetime


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """The half-open day window [start, end) as the vars every incremental model reads."""
    return {"min_date": start.date().isoformat(), "max_date": end.date().isoformat()}


def build_args(window: tuple[datetime, datetime] | None) -> list[str]:
    """`dbt build` for a partition window (one invocation however many days), or everything."""
    args = ["build"]
    if window is not None:
        args += ["--vars", json.dumps(partition_vars(*window), sort_keys=True)]
    return args
