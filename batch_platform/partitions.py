"""The one partitioning scheme of the platform: UTC days, end to end.

Extracts, staging models and marts share it, so a day flows from a landing folder to a mart
without any mapping. The first day comes from BATCH_PLATFORM_START_DATE (default 2026-01-01),
read when definitions are built. Days run up to yesterday (today is still being delivered);
BATCH_PLATFORM_END_DATE (exclusive) stops them earlier, for replaying a historical landscape
whose later days would otherwise exist as partitions that never receive data.
"""

from __future__ import annotations

import os
from datetime import date, datetime

import dagster as dg

START_DATE_ENV = "BATCH_PLATFORM_START_DATE"
END_DATE_ENV = "BATCH_PLATFORM_END_DATE"
DEFAULT_START_DATE = "2026-01-01"


def _date_from_env(name: str, default: str | None) -> str | None:
    value = os.environ.get(name, default)
    if value is None:
        return None
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a date like 2026-01-01, got {value!r}") from None
    return value


def daily_partitions_from_environment() -> dg.DailyPartitionsDefinition:
    """The platform's days, from BATCH_PLATFORM_START_DATE / _END_DATE.

    Called once, when the definitions load (definitions.py), and handed to every builder: no
    module reads the environment when it is imported, so a test or a second code location can
    set the dates before building definitions.
    """
    return dg.DailyPartitionsDefinition(
        start_date=_date_from_env(START_DATE_ENV, DEFAULT_START_DATE),
        end_date=_date_from_env(END_DATE_ENV, None),
        timezone="UTC",
    )


def partition_day(key: str) -> date:
    """The day a partition key names; refuses anything that is not exactly YYYY-MM-DD."""
    try:
        return datetime.strptime(key, "%Y-%m-%d").date()
    except ValueError:
        raise ValueError(f"partition key must be a day like 2026-03-01, got {key!r}") from None
