"""A daily catch-up for sources nobody notifies.

Event sources announce themselves (the new-data sensor sees their files); database and API
sources are polled by the same sensor. The catch-up re-extracts yesterday for the polled
sources once a day anyway, so a missed poll or a source that was down all day is closed by the
next morning. Off in development (the sensors cover the demo), on in production
(BATCH_PLATFORM_ENV=production): the caller says which, from `PlatformSettings.production`, so
this module reads no environment.
"""

import dagster as dg

from batch_platform.extract.factory import extract_asset_key
from batch_platform.registry import SourceSpec


def build_catch_up_schedule(
    specs: list[SourceSpec], partitions: dg.DailyPartitionsDefinition, production: bool
) -> dg.ScheduleDefinition:
    """The schedule of yesterday's polled extracts; running by default only in production."""
    polled = [extract_asset_key(s) for s in specs if s.access in ("database", "api")]
    job = dg.define_asset_job(
        "daily_catch_up",
        selection=dg.AssetSelection.assets(*polled),
        partitions_def=partitions,
        description="Re-extract yesterday from every database and API source.",
    )
    return dg.build_schedule_from_partitioned_job(
        job,
        hour_of_day=1,
        minute_of_hour=30,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if production else dg.DefaultScheduleStatus.STOPPED
        ),
    )
