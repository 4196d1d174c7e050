"""Sensors: new data moves a day through the whole graph in two runs; failures are reported.

A day is the unit of work. New data for a day leads to one run of its extracts and then one
run of everything downstream of them, instead of a run per source and day followed by the
declarative automation climbing the graph one layer per tick (each step a process start, a
code-location load and a dbt start-up):

- `new_data_sensor`: new or changed landing files of event sources (a late file in an old
  day's folder re-opens that day), and rows with a newer watermark than the last one seen in
  database and API sources, request the extracts of exactly the days they belong to: one run
  per stretch of days (news at most 7 days apart), extracting every source for them (a source
  with nothing on a day gets an empty partition, not a gap). On a fresh instance the first
  tick sees all history, so the whole landscape is extracted in one run. The cursor holds
  the landing high-water mark (file change times plus the files seen at that mark) and each
  polled source's watermark, so a restart neither repeats nor misses anything.
- `downstream_sensor`: after extract partitions materialise, however they were launched,
  requests ONE run of everything above the extracts (the quarantine, every dbt model, the
  analyst snapshot) over the days touched and the days their settlement windows reach. It
  waits while extract runs are unfinished, so that their days share the run.
- `run_failure_alert`: logs every failed run and, when ALERT_WEBHOOK_URL is set, POSTs it.

Declarative automation (automation.py) keeps what the sensors cannot know: freshness, and a
person rebuilding a model by hand.
"""

import hashlib
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
from batch_platform.extract.factory import CONTENT_HASH, extract_asset_key
from batch_platform.registry import SourceSpec

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRIGGER_TAG = "batch_platform/trigger"
DOWNSTREAM = "downstream"  # TRIGGER_TAG of the downstream sensor's runs
NEWS_TAG = "batch_platform/sources_with_news"  # which sources had new data on a run's days
# Dagster's own tags for a run over a range of partitions (one run, however many days).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# How often the two sensors look. Between a day landing and the analysts' snapshot holding it
# there are two sensor waits and two run launches (docs/BENCHMARKS.md, Latency), so these set
# most of the latency. Dagster's sensor daemon evaluates sensors at most every 5 s, so the
# downstream sensor, which only reads the instance's event log, looks on every pass. The new
# data sensor lists the landing zone and asks each database and API for its newest watermark
# (one small query each): every 10 s keeps that load low on the sources and on the daemon.
NEW_DATA_INTERVAL_SECONDS = 10
DOWNSTREAM_INTERVAL_SECONDS = 5


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


Touched = dict[str, dict[str, SourceSpec]]  # day -> source path -> source


def landing_changes(
    files: list[LandingFile], cursor: LandingCursor, partition_keys: set[str]
) -> tuple[Touched, LandingCursor, list[str]]:
    """The days with new or changed landing files and the sources they belong to.

    Days outside the partitions are skipped and reported.
    """
    new = [f for f in files if cursor.is_new(f)]
    touched: Touched = {}
    skipped = []
    for file in new:
        if file.day not in partition_keys:
            skipped.append(f"{file.relative}: day {file.day} is not a partition")
            continue
        touched.setdefault(file.day, {})[file.source.path] = file.source
    return touched, cursor.advance(new), skipped


def _probe(spec: SourceSpec, since: str | None) -> dict[str, str]:
    if spec.access == "database":
        return database.changed_days(spec, paths.data_dir(), since)
    return api.changed_days(spec, since)


def watermark_changes(
    specs: list[SourceSpec], cursor: dict[str, str], partition_keys: set[str], log
) -> tuple[Touched, dict[str, str]]:
    """Ask each polled source which days changed since its last watermark.

    A source that cannot be reached is logged and keeps its cursor, so it is asked again next
    tick and nothing is missed.
    """
    cursor = dict(cursor)
    touched: Touched = {}
    for spec in specs:
        try:
            changed = _probe(spec, cursor.get(spec.path))
        except Exception as error:  # any source failure: report, skip this tick
            log.warning(f"new_data_sensor: {spec.path} not polled: {error}")
            continue
        for day in sorted(changed):
            if day not in partition_keys:
                log.warning(f"new_data_sensor: {spec.path} changed on {day}, not a partition")
                continue
            touched.setdefault(day, {})[spec.path] = spec
        if changed:
            cursor[spec.path] = max(changed.values())
    return touched, cursor


# Days with news at most this many days apart share one extract run (the days between are
# extracted again, which rewrites the same partitions): a new day and the late files the relays
# filed into the days before it are one run, not one per stretch.
MAX_GAP_DAYS = 7


def stretches(
    days: Iterable[str], partition_keys: list[str], max_gap: int = MAX_GAP_DAYS
) -> list[tuple[str, str]]:
    """`days` grouped into stretches whose neighbours are at most `max_gap` partitions apart,
    as (first, last) pairs, oldest first."""
    position = {key: i for i, key in enumerate(partition_keys)}
    ranges: list[tuple[str, str]] = []
    for day in sorted(set(days), key=position.__getitem__):
        if ranges and position[day] - position[ranges[-1][1]] <= max_gap:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def partition_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make a run cover the partitions first..last (one run however many days)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def extract_run_requests(
    touched: Touched, specs: list[SourceSpec], partition_keys: list[str], run_key_suffix: str
) -> list[dg.RunRequest]:
    """One run per stretch of days with new data (`stretches`), extracting every source for each
    of its days.

    A day is a unit: a whole stretch (the first tick on a fresh instance sees every day of
    history; a normal day sees one) goes in one run instead of one per day and source, because
    every run is a process that loads the code location first. Every source is extracted, not
    only those with news: a source with nothing on a day gets its empty partition (0 rows)
    instead of a gap that looks like a failure, and one that had nothing new rewrites the same
    partition (extracts are idempotent). Which sources had news is in the run's tags.
    """
    requests = []
    for first, last in stretches(touched, partition_keys):
        days = partition_keys[partition_keys.index(first) : partition_keys.index(last) + 1]
        news = sorted({path for day in days for path in touched.get(day, {})})
        requests.append(
            dg.RunRequest(
                run_key=f"new_data:{first}..{last}:{run_key_suffix}",
                asset_selection=[extract_asset_key(spec) for spec in specs],
                tags={
                    TRIGGER_TAG: "new_data",
                    NEWS_TAG: ",".join(news),
                    **partition_tags(first, last),
                },
            )
        )
    return requests


def _merge(*parts: Touched) -> Touched:
    merged: Touched = {}
    for part in parts:
        for day, sources in part.items():
            merged.setdefault(day, {}).update(sources)
    return merged


def build_new_data_sensor(
    specs: list[SourceSpec], partitions: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    """One sensor for every source, so that a day's new data is one extract run, not several."""
    event_specs = [s for s in specs if s.access == "events"]
    polled = [s for s in specs if s.access in ("database", "api")]

    @dg.sensor(
        name="new_data_sensor",
        target=dg.AssetSelection.assets(*(extract_asset_key(s) for s in specs)),
        minimum_interval_seconds=NEW_DATA_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="New or changed landing files of event sources, and rows with a newer "
        "watermark in database and API sources, request the extracts of exactly the days they "
        "belong to (late data re-opens old days): one run per stretch of days at most 7 apart, "
        "extracting every source for them. The downstream_sensor then takes the days further.",
    )
    def new_data_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        keys = partitions.get_partition_keys()
        landing = LandingCursor.parse(state.get("landing"))
        files = scan_landing(event_specs, paths.landing_dir())
        from_files, landing, skipped = landing_changes(files, landing, set(keys))
        for message in skipped:
            context.log.warning(f"new_data_sensor skipped {message}")
        from_rows, watermarks = watermark_changes(
            polled, state.get("watermarks", {}), set(keys), context.log
        )
        cursor = json.dumps({"landing": landing.dump(), "watermarks": watermarks}, sort_keys=True)
        suffix = hashlib.sha256(cursor.encode()).hexdigest()[:16]
        requests = extract_run_requests(_merge(from_files, from_rows), specs, keys, suffix)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return new_data_sensor


# Runs that may still bring extracts: a downstream run waits for them, to take their days too.
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def day_reach(specs: Iterable[dg.AssetSpec], roots: Iterable[dg.AssetKey]) -> tuple[int, int]:
    """How far, in days, a change to one day of `roots` reaches in the assets downstream of them.

    A model whose partition X reads its parent's days X+start..X+end (a TimeWindowPartitionMapping;
    the identity reads X) changes on days D-end..D-start when the parent's day D changes. Along a
    chain the offsets add up: the order fact reads staging 7 days around its day, and the
    reconciliation reads the order fact 7 days around its own, so a day of events reaches 14
    days either side. Returns (earliest, latest) offsets over every asset downstream of `roots`.
    """
    parents: dict[dg.AssetKey, list[tuple[dg.AssetKey, int, int]]] = {}
    for spec in specs:
        for dep in spec.deps:
            mapping = dep.partition_mapping
            if isinstance(mapping, dg.TimeWindowPartitionMapping):
                start, end = mapping.start_offset, mapping.end_offset
            else:
                start = end = 0
            parents.setdefault(spec.key, []).append((dep.asset_key, start, end))
    reach: dict[dg.AssetKey, tuple[int, int] | None] = {key: (0, 0) for key in roots}

    def of(key: dg.AssetKey) -> tuple[int, int] | None:
        if key not in reach:
            reach[key] = None  # not downstream of the roots until a parent says so (no cycles)
            spans = [
                (span[0] - end, span[1] - start)
                for parent, start, end in parents.get(key, [])
                if (span := of(parent)) is not None
            ]
            if spans:
                reach[key] = (min(lo for lo, _ in spans), max(hi for _, hi in spans))
        return reach[key]

    spans = [span for key in list(parents) if (span := of(key)) is not None]
    return min(lo for lo, _ in spans), max(hi for _, hi in spans)


def downstream_window(
    days: Iterable[str], partition_keys: list[str], reach: tuple[int, int]
) -> tuple[str, str]:
    """The partitions a change on `days` reaches (`day_reach`), within the partitions."""
    positions = sorted(partition_keys.index(day) for day in days)
    first = max(0, positions[0] + reach[0])
    last = min(len(partition_keys) - 1, positions[-1] + reach[1])
    return partition_keys[first], partition_keys[last]


def unchanged(instance: dg.DagsterInstance, record) -> bool:
    """Whether an extract partition's materialisation holds what the one before it held."""
    digest = record.asset_materialization.metadata.get(CONTENT_HASH)
    if digest is None or not record.partition_key:
        return False
    previous = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=record.asset_key,
            asset_partitions=[record.partition_key],
            before_storage_id=record.storage_id,
        ),
        limit=1,
    ).records
    return bool(previous) and previous[0].asset_materialization.metadata.get(CONTENT_HASH) == digest


def new_extract_days(
    instance: dg.DagsterInstance,
    extract_keys: list[dg.AssetKey],
    downstream_keys: set[dg.AssetKey],
    after: int,
) -> tuple[set[str], int]:
    """Days of extract partitions materialised after event-log id `after`, and the newest id.

    A materialisation from a run that also built everything downstream (a whole-graph range
    run) needs nothing more, and one whose partition holds what it held before (same content
    hash: a re-extract that found nothing new) changes nothing downstream; neither is counted.
    """
    days: set[str] = set()
    newest = after
    covered: dict[str, bool] = {}
    for key in extract_keys:
        cursor = None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
                limit=1000,
                cursor=cursor,
                ascending=True,
            )
            for record in result.records:
                newest = max(newest, record.storage_id)
                if record.run_id not in covered:
                    run = instance.get_run_by_id(record.run_id)
                    selection = (run.asset_selection if run else None) or set()
                    covered[record.run_id] = downstream_keys <= selection
                if (
                    record.partition_key
                    and not covered[record.run_id]
                    and not unchanged(instance, record)
                ):
                    days.add(record.partition_key)
            if not result.has_more:
                break
            cursor = result.cursor
    return days, newest


def writers_in_flight(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> bool:
    """Whether a run that writes any of `keys` is queued or running."""
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        if (record.dagster_run.asset_selection or set()) & keys:
            return True
    return False


def build_downstream_sensor(
    extract_keys: list[dg.AssetKey],
    downstream_keys: list[dg.AssetKey],
    partitions: dg.PartitionsDefinition,
    reach: tuple[int, int],
) -> dg.SensorDefinition:
    """Takes every day whose extracts changed through everything above them, in one run."""
    downstream = set(downstream_keys)
    watched = set(extract_keys) | downstream

    @dg.sensor(
        name="downstream_sensor",
        target=dg.AssetSelection.assets(*downstream_keys),
        minimum_interval_seconds=DOWNSTREAM_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After extracts materialise (by a sensor, a person, a schedule or a "
        "backfill), requests ONE run of everything downstream of them (quarantine, dbt models, "
        "snapshot) for the days they touched and the days their settlement window reaches. It "
        "waits while extract runs are still queued or running, so their days go together, and "
        "while a run above the extracts is, so no two runs rebuild the same days at once.",
    )
    def downstream_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        keys = partitions.get_partition_keys()
        days, after = new_extract_days(
            context.instance, extract_keys, downstream, int(state.get("after", 0))
        )
        pending = {day for day in set(state.get("pending", [])) | days if day in keys}
        requests = []
        # Wait while extracts are still being written (their days should share the run) and
        # while a run is still writing above them: two runs over overlapping windows would
        # rebuild the same days at once. DuckDB's pool would only queue the second; Spark,
        # whose partitioned models take no pool, would let both write a day's folder.
        if pending and not writers_in_flight(context.instance, watched):
            first, last = downstream_window(pending, keys, reach)
            requests.append(
                dg.RunRequest(
                    run_key=f"downstream:{first}..{last}:{after}",
                    asset_selection=downstream_keys,
                    tags={TRIGGER_TAG: DOWNSTREAM, **partition_tags(first, last)},
                )
            )
            pending = set()
        cursor = json.dumps({"after": after, "pending": sorted(pending)})
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return downstream_sensor


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
