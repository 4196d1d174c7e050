"""Sensors: react to new upstream data, and say so when a run fails.

- `landing_sensor`: a new or changed landing file of an event source requests that source's
  extract for exactly the day(s) whose folders changed. A late file in an old day's folder
  re-opens that day. The cursor is a high-water mark of file change times plus the files seen
  at that mark, so a restart neither repeats nor misses a file.
- `watermark_sensor`: database and API sources are polled for rows with a newer watermark than
  the last one seen (kept per source in the cursor); the days of those rows are requested.
- `run_failure_alert`: logs every failed run and, when ALERT_WEBHOOK_URL is set, POSTs it.

Downstream dbt models follow through declarative automation (see automation.py).
"""

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx

from batch_platform import paths
from batch_platform.extract import api, database
from batch_platform.extract.events import refusal
from batch_platform.extract.factory import extract_asset_key
from batch_platform.partitions import daily_partitions
from batch_platform.registry import SourceSpec

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class LandingFile:
    source: SourceSpec
    day: str
    relative: str
    changed_ns: int


def _pattern_with_day(spec: SourceSpec) -> tuple[str, int]:
    """The landing glob with `*` for the day, and which path part holds the day."""
    parts = spec.options["landing"].split("/")
    index = next(i for i, part in enumerate(parts) if "{date}" in part)
    return "/".join(p.replace("{date}", "*") for p in parts), index


def scan_landing(specs: Iterable[SourceSpec], landing_root: Path) -> list[LandingFile]:
    """Every well-formed landing file of the event sources, with the day it belongs to."""
    found = []
    for spec in specs:
        glob, index = _pattern_with_day(spec)
        prefix, suffix = spec.options["landing"].split("/")[index].split("{date}")
        for path in landing_root.glob(glob):
            relative = path.relative_to(landing_root)
            part = relative.parts[index]
            day = part[len(prefix) : len(part) - len(suffix)]
            if not _DAY.match(day) or refusal(path, landing_root):
                continue
            stat = path.stat()
            found.append(
                LandingFile(spec, day, relative.as_posix(), max(stat.st_mtime_ns, stat.st_ctime_ns))
            )
    return found


@dataclass(frozen=True)
class LandingCursor:
    """Files changed after `mark_ns` are new; so are files at `mark_ns` not in `seen_at_mark`."""

    mark_ns: int = 0
    seen_at_mark: tuple[str, ...] = ()

    @staticmethod
    def parse(text: str | None) -> "LandingCursor":
        if not text:
            return LandingCursor()
        data = json.loads(text)
        return LandingCursor(int(data["mark_ns"]), tuple(data["seen_at_mark"]))

    def dump(self) -> str:
        return json.dumps({"mark_ns": self.mark_ns, "seen_at_mark": sorted(self.seen_at_mark)})

    def is_new(self, file: LandingFile) -> bool:
        return file.changed_ns > self.mark_ns or (
            file.changed_ns == self.mark_ns and file.relative not in self.seen_at_mark
        )

    def advance(self, files: list[LandingFile]) -> "LandingCursor":
        if not files:
            return self
        mark = max(self.mark_ns, *(f.changed_ns for f in files))
        seen = {f.relative for f in files if f.changed_ns == mark}
        if mark == self.mark_ns:
            seen |= set(self.seen_at_mark)
        return LandingCursor(mark, tuple(sorted(seen)))


def landing_run_requests(
    files: list[LandingFile], cursor: LandingCursor, partition_keys: set[str]
) -> tuple[list[dg.RunRequest], LandingCursor, list[str]]:
    """One run request per day with new files, extracting every source they belong to.

    One run per day rather than per (source, day): every run is a process that loads the code
    location first, so a day's five event sources share one; a failing source still fails only
    its own step. Days outside the partitions are skipped and reported.
    """
    new = [f for f in files if cursor.is_new(f)]
    touched: dict[str, dict[str, SourceSpec]] = {}
    skipped = []
    for file in new:
        if file.day not in partition_keys:
            skipped.append(f"{file.relative}: day {file.day} is not a partition")
            continue
        touched.setdefault(file.day, {})[file.source.path] = file.source
    next_cursor = cursor.advance(new)
    requests = [
        dg.RunRequest(
            run_key=f"landing:{day}:{next_cursor.mark_ns}",
            asset_selection=[extract_asset_key(sources[path]) for path in sorted(sources)],
            partition_key=day,
            tags={"batch_platform/trigger": "landing_file"},
        )
        for day, sources in sorted(touched.items())
    ]
    return requests, next_cursor, skipped


def build_landing_sensor(specs: list[SourceSpec]) -> dg.SensorDefinition:
    event_specs = [s for s in specs if s.access == "events"]

    @dg.sensor(
        name="landing_sensor",
        target=dg.AssetSelection.assets(*(extract_asset_key(s) for s in event_specs)),
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="New or changed landing files request their event source's extract for "
        "exactly the days they belong to (late files re-open old days).",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = LandingCursor.parse(context.cursor)
        files = scan_landing(event_specs, paths.landing_dir())
        keys = set(daily_partitions.get_partition_keys())
        requests, next_cursor, skipped = landing_run_requests(files, cursor, keys)
        for message in skipped:
            context.log.warning(f"landing_sensor skipped {message}")
        return dg.SensorResult(run_requests=requests, cursor=next_cursor.dump())

    return landing_sensor


def _probe(spec: SourceSpec, since: str | None) -> dict[str, str]:
    if spec.access == "database":
        return database.changed_days(spec, paths.data_dir(), since)
    return api.changed_days(spec, since)


def watermark_run_requests(
    specs: list[SourceSpec], cursor: dict[str, str], partition_keys: set[str], log
) -> tuple[list[dg.RunRequest], dict[str, str]]:
    """Ask each polled source which days changed since its last watermark; request those days.

    One run per changed day, extracting every source that changed on it. A source that cannot
    be reached is logged and keeps its cursor, so it is asked again next tick and nothing is
    missed.
    """
    cursor = dict(cursor)
    changed_by_day: dict[str, dict[str, tuple[SourceSpec, str]]] = {}
    for spec in specs:
        try:
            changed = _probe(spec, cursor.get(spec.path))
        except Exception as error:  # any source failure: report, skip this tick
            log.warning(f"watermark_sensor: {spec.path} not polled: {error}")
            continue
        for day, newest in sorted(changed.items()):
            if day not in partition_keys:
                log.warning(f"watermark_sensor: {spec.path} changed on {day}, not a partition")
                continue
            changed_by_day.setdefault(day, {})[spec.path] = (spec, newest)
        if changed:
            cursor[spec.path] = max(changed.values())
    requests = [
        dg.RunRequest(
            # the same day and watermarks never run twice; a newer watermark runs again
            run_key=f"watermark:{day}:"
            + ",".join(f"{path}@{newest}" for path, (_, newest) in sorted(sources.items())),
            asset_selection=[extract_asset_key(spec) for _, (spec, _) in sorted(sources.items())],
            partition_key=day,
            tags={"batch_platform/trigger": "watermark"},
        )
        for day, sources in sorted(changed_by_day.items())
    ]
    return requests, cursor


def build_watermark_sensor(specs: list[SourceSpec]) -> dg.SensorDefinition:
    polled = [s for s in specs if s.access in ("database", "api")]

    @dg.sensor(
        name="watermark_sensor",
        target=dg.AssetSelection.assets(*(extract_asset_key(s) for s in polled)),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Polls database and API sources for rows with a newer watermark than the "
        "last one seen and requests the days those rows belong to.",
    )
    def watermark_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        keys = set(daily_partitions.get_partition_keys())
        requests, cursor = watermark_run_requests(polled, cursor, keys, context.log)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return watermark_sensor


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Logs every failed run and POSTs it to ALERT_WEBHOOK_URL when that is set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    message = (
        f"run {run.run_id} of {run.job_name} failed"
        f" (partition {run.tags.get('dagster/partition', '-')}): "
        f"{context.failure_event.message or 'no message'}"
    )
    context.log.error(message)
    url = os.environ.get("ALERT_WEBHOOK_URL")
    if url:
        payload = {"text": message, "run_id": run.run_id, "job": run.job_name}
        response = httpx.post(url, json=payload, timeout=10)
        response.raise_for_status()
