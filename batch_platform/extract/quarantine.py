"""The quarantine as an asset of its own: every record the extracts rejected, per day.

Each extract writes its rejected records beside its raw partition
(`lake/quarantine/<service>/<entity>/dt=<day>/`). Together those files are one dataset, which
dbt reads as the `platform.quarantine` source. Declaring it here, downstream of every extract,
makes that dependency visible to Dagster: the quarantine's day is materialised after the day's
extracts, so the staging table and summary above it update like any other model, and the
asset graph has no source without a producer.

Materialising a day does not copy anything; it reads the day's quarantine files (which the
extracts wrote atomically) and records what they hold, per source and per rule broken, so the
UI plots rejections per day. A source whose day was never extracted has no file and counts 0.
"""

from collections import Counter
from datetime import date

import dagster as dg
import pyarrow.parquet as pq

from batch_platform import paths
from batch_platform.extract.factory import extract_asset_key
from batch_platform.extract.lake import partition_path
from batch_platform.partitions import partition_day
from batch_platform.registry import SourceSpec

QUARANTINE_KEY = dg.AssetKey(["raw", "platform", "quarantine"])


def _rule(reason: str) -> str:
    """The rule a reason names: the part before ", got" (as stg_platform__quarantine does)."""
    return reason.split(", got ", 1)[0]


def day_figures(specs: list[SourceSpec], day: date) -> dict[str, object]:
    """Quarantined records of one day: the total, per source, per rule."""
    lake = paths.lake_dir()
    by_source: dict[str, int] = {}
    by_rule: Counter[str] = Counter()
    for spec in specs:
        path = partition_path(lake, "quarantine", spec, day)
        if not path.exists():
            continue
        reasons = pq.read_table(path, columns=["reason"]).column("reason").to_pylist()
        if reasons:
            by_source[spec.path] = len(reasons)
            by_rule.update(_rule(reason or "") for reason in reasons)
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(by_source.values())),
        "sources_with_rejections": dg.MetadataValue.int(len(by_source)),
        "by_source": dg.MetadataValue.json(dict(sorted(by_source.items()))),
        "by_rule": dg.MetadataValue.json(dict(by_rule.most_common())),
    }


def build_quarantine_asset(
    specs: list[SourceSpec], partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=QUARANTINE_KEY,
        deps=[extract_asset_key(spec) for spec in specs],
        group_name="infrastructure",
        owners=["team:data-platform"],
        kinds={"parquet"},
        tags={"layer": "raw"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={"lake_path": dg.MetadataValue.path(str(paths.lake_dir() / "quarantine"))},
        description=(
            "Every record an extract rejected, with its source, origin (file and line, page and "
            "index, or table and row) and the first contract rule it broke. Written by the "
            "extracts beside their raw partitions (`lake/quarantine/<service>/<entity>/"
            "dt=<day>/`); materialising a day records what the day's files hold, per source and "
            "rule. Raw text may hold PII (masked for PII sources), so it never leaves staging."
        ),
    )
    def quarantine(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = [partition_day(key) for key in context.partition_keys]
        figures = {day: day_figures(specs, day) for day in days}
        if len(days) == 1:
            return dg.MaterializeResult(metadata=figures[days[0]])
        # A range run materialises all its days at once; each day's materialisation carries
        # that day's own figures (the run's totals would repeat on every day).
        for day, metadata in figures.items():
            context.add_asset_metadata(metadata, partition_key=day.isoformat())
        return dg.MaterializeResult(metadata={"days": len(days)})

    return quarantine
