"""Time as the simulator counts it: integer microseconds since 1970-01-01 UTC.

Integers make every comparison and day boundary exact (no float drift, no time zones), and
formatting happens only when a value is written, in the two shapes the services use.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000
SECOND_US = 1_000_000
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def day_start(day: date) -> int:
    """Microseconds at 00:00 of `day`."""
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY_US


def day_of(us: int) -> date:
    """The UTC day an instant falls on."""
    return date.fromordinal(us // DAY_US + _EPOCH_ORDINAL)


def event_timestamp(us: int) -> str:
    """`2026-03-01T10:15:30.123456`: how the outbox relays write `occurred_at` (UTC, no offset)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")


def db_timestamp(us: int) -> str:
    """`2026-03-01 10:15:30.123456`: how the service databases store timestamps (sortable text)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(sep=" ", timespec="microseconds")


def days_between(first: date, end: date) -> list[date]:
    """The days of the half-open range [first, end)."""
    return [first + timedelta(days=n) for n in range((end - first).days)]
