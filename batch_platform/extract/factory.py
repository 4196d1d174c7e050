"""One Dagster asset per registry entry: the extract factory.

Nothing here knows a particular service. Each `SourceSpec` becomes a daily-partitioned asset
`raw/<service>/<entity>` in the `infrastructure` group that runs the access method's reader and
records where every record went. Adding a service to `_sources.yml` adds an asset here.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from batch_platform import paths
from batch_platform.extract.api import extract_api
from batch_platform.extract.database import DatabaseSourceError, extract_database
from batch_platform.extract.events import MissingColumnError, extract_events
from batch_platform.extract.lake import PartitionStats, partition_path
from batch_platform.partitions import partition_day
from batch_platform.registry import SourceSpec

ROWS_ACCOUNTED_FOR = "rows_accounted_for"
# Metadata of each extract partition: a hash of what it holds (its lake and quarantine files),
# so that a re-extract that changed nothing is known as such downstream.
CONTENT_HASH = "content_hash"

Extractor = Callable[[SourceSpec, date, Path], PartitionStats]

EXTRACTORS: dict[str, Extractor] = {
    "events": extract_events,
    "api": extract_api,
    "database": extract_database,
}

# Network faults are transient; a local file is not worth retrying.
_TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
_KINDS = {"events": {"json", "parquet"}, "database": {"sql", "parquet"}, "api": {"api", "parquet"}}


def extract_asset_key(spec: SourceSpec) -> dg.AssetKey:
    return dg.AssetKey(["raw", spec.service, spec.entity])


def _code_version(spec: SourceSpec) -> str:
    """Changes when the contract or the way to extract changes, so the UI flags the asset."""
    text = json.dumps(
        [
            spec.access,
            spec.options,
            spec.primary_key,
            spec.event_time,
            spec.watermark,
            [(c.name, c.data_type, c.required, c.accepted_values, c.minimum) for c in spec.columns],
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _contract_schema(spec: SourceSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.data_type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=not c.required),
                tags={"pii": ""} if c.pii else None,
            )
            for c in spec.columns
        ]
    )


def _description(spec: SourceSpec) -> str:
    how = {
        "events": f"outbox event files `{spec.options.get('landing')}` in the landing zone",
        "database": f"table `{spec.options.get('table')}` through a read-only connection "
        f"(${spec.options.get('connection_env')}), incremental by `{spec.watermark}`",
        "api": f"REST endpoint `{spec.options.get('path')}` (${spec.options.get('base_url_env')}),"
        f" incremental by `{spec.watermark}`",
    }[spec.access]
    return (
        f"{spec.description}\n\nExtracted from the **{spec.service}** service's {how}, into "
        f"`lake/raw/{spec.path}/dt=<day>/data.parquet`; records that break the contract go to "
        f"`lake/quarantine/{spec.path}/`. Declared in `dbt_project/models/staging/"
        f"{spec.service}/_sources.yml`."
    )


def _metadata(stats: PartitionStats) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(stats.rows_loaded),
        "rows_read": dg.MetadataValue.int(stats.rows_read),
        "rows_loaded": dg.MetadataValue.int(stats.rows_loaded),
        "rows_duplicate": dg.MetadataValue.int(stats.rows_duplicate),
        "rows_quarantined": dg.MetadataValue.int(stats.rows_quarantined),
        "bytes_read": dg.MetadataValue.int(stats.bytes_read),
        "input_files": dg.MetadataValue.int(stats.input_files),
        "watermark": dg.MetadataValue.text(stats.watermark or ""),
        "quarantine_reasons": dg.MetadataValue.json(stats.quarantine_reasons),
        "schema_drift": dg.MetadataValue.json(stats.schema_drift),
        "skipped_inputs": dg.MetadataValue.json(stats.skipped_inputs),
    }
    if stats.rows_read == 0:
        # An empty partition is a day the source had nothing new, not a failed extract.
        metadata["note"] = dg.MetadataValue.text(
            "no source rows for this day: the partition is materialised empty (0 rows)"
        )
    return metadata


def _unaccounted(spec: SourceSpec, day: date, stats: PartitionStats, data_dir: Path) -> int:
    """Re-count the files actually written: read - (loaded + duplicates + quarantined)."""
    lake = paths.lake_dir(data_dir)
    loaded = pq.read_metadata(partition_path(lake, "raw", spec, day)).num_rows
    quarantined = pq.read_metadata(partition_path(lake, "quarantine", spec, day)).num_rows
    return stats.rows_read - (loaded + stats.rows_duplicate + quarantined)


def content_hash(spec: SourceSpec, day: date, data_dir: Path) -> str:
    """SHA-256 of a partition's lake file and quarantine file, in that order.

    The extract writes the same bytes for the same records (tests/test_reliability.py holds
    that), so equal hashes mean the partition did not change.
    """
    digest = hashlib.sha256()
    lake = paths.lake_dir(data_dir)
    for zone in ("raw", "quarantine"):
        with partition_path(lake, zone, spec, day).open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def _accounting_check(unaccounted: dict[str, int], total: PartitionStats) -> dg.AssetCheckResult:
    off = {day: n for day, n in unaccounted.items() if n}
    return dg.AssetCheckResult(
        check_name=ROWS_ACCOUNTED_FOR,
        passed=not off and total.rows_duplicate >= 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows_read": total.rows_read,
            "rows_loaded": total.rows_loaded,
            "rows_duplicate": total.rows_duplicate,
            "rows_quarantined": total.rows_quarantined,
            "days_checked": len(unaccounted),
            "unaccounted_by_day": off,
        },
    )


def _run_extractor(
    extractor: Extractor, spec: SourceSpec, day: date, data_dir: Path
) -> PartitionStats:
    """Run one day's extract; a fault that asking again cannot fix fails the step at once.

    Dagster's retry policy is for transient faults. A missing table or column, or a producer
    whose records all lack a required field, would fail the same way on every retry, so they
    bypass it (like `ApiRejected`) and the run fails with the source's own message.
    """
    try:
        return extractor(spec, day, data_dir)
    except DatabaseSourceError as error:
        if error.transient:
            raise
        raise dg.Failure(description=str(error), allow_retries=False) from None
    except MissingColumnError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def build_extract_asset(
    spec: SourceSpec, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    key = extract_asset_key(spec)
    extractor = EXTRACTORS[spec.access]
    metadata: dict[str, object] = {
        "dagster/column_schema": _contract_schema(spec),
        "access_method": spec.access,
        "primary_key": spec.primary_key,
        "event_time": spec.event_time,
        "lake_path": dg.MetadataValue.path(str(paths.lake_dir() / "raw" / spec.path)),
    }
    if spec.service_url:
        metadata["service"] = dg.MetadataValue.url(spec.service_url)

    @dg.asset(
        key=key,
        description=_description(spec),
        group_name="infrastructure",
        owners=[spec.owner],
        kinds=_KINDS[spec.access],
        tags={"service": spec.service, "access": spec.access, "layer": "raw"},
        metadata=metadata,
        partitions_def=partitions,
        # A backfill is one run that walks its days: no process start-up per day.
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=_code_version(spec),
        retry_policy=None if spec.access == "events" else _TRANSIENT_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                ROWS_ACCOUNTED_FOR,
                asset=key,
                description="Every record read is loaded, a duplicate, or quarantined.",
            )
        ],
    )
    def _extract(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Extract each day of the run's partitions (one, or a backfill range) in turn."""
        data_dir = paths.data_dir()
        days = [partition_day(key) for key in context.partition_keys]
        total, unaccounted = PartitionStats(), {}
        for day in days:
            stats = _run_extractor(extractor, spec, day, data_dir)
            for skipped in stats.skipped_inputs:
                context.log.warning(f"{spec.path} {day}: skipped input {skipped}")
            if stats.schema_drift:
                context.log.warning(
                    f"{spec.path} {day}: schema drift, fields not in the contract: "
                    + ", ".join(stats.schema_drift)
                )
            digest = content_hash(spec, day, data_dir)
            if len(days) > 1:
                # A range run materialises all its days at once; each day's materialisation
                # carries that day's own figures (the run's totals would repeat on every day).
                context.add_asset_metadata(
                    {**_metadata(stats), CONTENT_HASH: dg.MetadataValue.text(digest)},
                    partition_key=day.isoformat(),
                )
            unaccounted[day.isoformat()] = _unaccounted(spec, day, stats, data_dir)
            total = total.combine(stats)
        if len(days) == 1:
            # One day: its hash is also the materialisation's data version, shown in the UI.
            return dg.MaterializeResult(
                metadata={**_metadata(total), CONTENT_HASH: dg.MetadataValue.text(digest)},
                check_results=[_accounting_check(unaccounted, total)],
                data_version=dg.DataVersion(digest),
            )
        return dg.MaterializeResult(
            metadata={**_metadata(total), "days": len(days)},
            check_results=[_accounting_check(unaccounted, total)],
        )

    _extract.__name__ = f"extract_{spec.name}"
    return _extract


def build_extract_assets(
    specs: list[SourceSpec], partitions: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """One asset per registry entry."""
    return [build_extract_asset(spec, partitions) for spec in specs]
