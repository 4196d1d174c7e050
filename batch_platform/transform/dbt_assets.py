"""dbt models as Dagster assets, split by materialization.

Incremental models are daily-partitioned: Dagster passes the partition window as dbt vars and
a backfill of any range is ONE dbt invocation in ONE run (`BackfillPolicy.single_run`). The
other models (current-state tables and dimensions) are unpartitioned and rebuilt whole.
Everything that writes the warehouse takes the `duckdb_warehouse` pool, which the instance
limits to one run at a time, because DuckDB allows one writer.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from batch_platform.dbt_project import dbt_project, ensure_manifest
from batch_platform.partitions import daily_partitions
from batch_platform.transform.dbt_vars import build_args

WAREHOUSE_POOL = "duckdb_warehouse"
PARTITIONED = "config.materialized:incremental"

# Must equal the `settlement_days` var in dbt_project.yml (a test holds them together): models
# built with the settlement window read their upstream partitions up to this many days ahead.
SETTLEMENT_DAYS = 5
SETTLEMENT_MACRO = "macro.batch_platform.settlement_end"

# dbt folders are the architectural layers; staging joins its extracts in `infrastructure`.
LAYER_GROUPS = {"staging": "infrastructure"}


class PlatformTranslator(DagsterDbtTranslator):
    """Maps dbt nodes onto the platform's asset graph: layer groups, raw keys for sources."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta = dbt_resource_props.get("meta") or {}
        if "asset_key" in (meta.get("dagster") or {}):
            return dg.AssetKey(meta["dagster"]["asset_key"])
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(
                ["raw", dbt_resource_props["source_name"], dbt_resource_props["name"]]
            )
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return LAYER_GROUPS.get(fqn[1], fqn[1])
        return super().get_group_name(dbt_resource_props)

    def get_partition_mapping(
        self,
        dbt_resource_props: Mapping[str, Any],
        dbt_parent_resource_props: Mapping[str, Any],
    ) -> dg.PartitionMapping | None:
        """A model keyed by order day that reads later lifecycle events depends on later days.

        So a payment or shipment that lands days after the order re-opens the order's day.
        """
        macros = (dbt_resource_props.get("depends_on") or {}).get("macros") or []
        if SETTLEMENT_MACRO in macros:
            return dg.TimeWindowPartitionMapping(
                start_offset=0,
                end_offset=SETTLEMENT_DAYS,
                allow_nonexistent_upstream_partitions=True,
            )
        return super().get_partition_mapping(dbt_resource_props, dbt_parent_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        fqn = dbt_resource_props.get("fqn") or []
        tags = dict(super().get_tags(dbt_resource_props))
        if len(fqn) > 2:
            tags["layer"] = fqn[1]
        return tags


translator = PlatformTranslator(settings=DagsterDbtTranslatorSettings(enable_code_references=True))


def _window(context: dg.AssetExecutionContext):
    if not context.has_partition_key_range and not context.has_partition_key:
        return None
    window = context.partition_time_window
    return window.start, window.end


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    select=PARTITIONED,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
    name="dbt_partitioned_models",
)
def dbt_partitioned_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Incremental models: replace exactly the partition window, in one dbt invocation."""
    yield from dbt.cli(build_args(_window(context)), context=context).stream()


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    exclude=PARTITIONED,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
    name="dbt_unpartitioned_models",
)
def dbt_unpartitioned_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Current-state tables (latest version per key) and dimensions, rebuilt whole."""
    yield from dbt.cli(build_args(None), context=context).stream()
