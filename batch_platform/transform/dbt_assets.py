"""dbt models as Dagster assets, split by materialization.

Incremental models are daily-partitioned: Dagster passes the partition window as dbt vars and
a backfill of any range is ONE dbt invocation in ONE run (`BackfillPolicy.single_run`). The
other models (current-state staging tables, dimensions, whole-table summaries) are unpartitioned
and rebuilt whole. On DuckDB everything that writes the warehouse takes the
`duckdb_warehouse` pool, which the instance limits to one writer at a time, because DuckDB
allows one writer; on Spark only the whole tables take a pool (`batch_platform.warehouse`).

Two multi-assets, in the order a build needs them: the partitioned models read only the lake
and each other (never a whole table: a daily partition must not freeze a current-state value,
or an incremental build would differ from a full rebuild), then the whole tables, which may
read anything below them.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from batch_platform.dbt_project import dbt_project, load_manifest
from batch_platform.paths import dbt_parse_path
from batch_platform.transform.dbt_invocation import (
    environment,
    keep_parse,
    new_target_path,
    seed_parse,
)
from batch_platform.transform.dbt_vars import BUILD_ARGS, window_environment
from batch_platform.transform.table_metrics import with_table_metrics
from batch_platform.warehouse import DUCKDB_POOL, Engine

WAREHOUSE_POOL = DUCKDB_POOL
# With the Celery executor (batch_platform/execution.py) the warehouse's writers run on the
# worker beside the DuckDB file: dagster-celery reads a step's queue from this op tag. The
# in-process executor ignores it.
WAREHOUSE_OP_TAGS = {DAGSTER_CELERY_QUEUE_TAG: "warehouse"}
# Two selections, in the order a full build needs them (one multi-asset each keeps the graph
# free of cycles): partitioned incremental models, then every whole table.
PARTITIONED = "config.materialized:incremental"
WHOLE_TABLES = "config.materialized:table"

# Must equal the `settlement_days` var in dbt_project.yml (a test holds them together): models
# built with the settlement window read their upstream partitions this many days around theirs.
SETTLEMENT_DAYS = 7
SETTLEMENT_MACRO = "macro.batch_platform.in_settlement_window"
SETTLEMENT_TAG = "settlement_window"

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
        """A model keyed by order day reads lifecycle events of the days around it.

        So a payment or shipment that lands days after the order re-opens the order's day.
        """
        macros = (dbt_resource_props.get("depends_on") or {}).get("macros") or []
        if SETTLEMENT_MACRO in macros:
            return dg.TimeWindowPartitionMapping(
                start_offset=-SETTLEMENT_DAYS,
                end_offset=SETTLEMENT_DAYS,
                allow_nonexistent_upstream_partitions=True,
            )
        return super().get_partition_mapping(dbt_resource_props, dbt_parent_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        fqn = dbt_resource_props.get("fqn") or []
        tags = dict(super().get_tags(dbt_resource_props))
        if len(fqn) > 2:
            tags["layer"] = fqn[1]
        if SETTLEMENT_MACRO in ((dbt_resource_props.get("depends_on") or {}).get("macros") or []):
            tags[SETTLEMENT_TAG] = "true"
        return tags


translator = PlatformTranslator(settings=DagsterDbtTranslatorSettings(enable_code_references=True))


def _window(context: dg.AssetExecutionContext):
    """The run's partition window, for partitioned models only.

    A range run of the whole graph tags every step with the range; the unpartitioned models in
    it get no window (their SQL ignores one).
    """
    if context.assets_def.partitions_def is None:
        return None
    if not context.has_partition_key_range and not context.has_partition_key:
        return None
    window = context.partition_time_window
    return window.start, window.end


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, engine: Engine):
    """`dbt build` for the run's window; each model's output carries its table figures.

    The window goes in the environment and the last parse for this data folder is reused
    (`dbt_invocation`), so dbt re-parses only what changed instead of the whole project.
    """
    window = _window(context)
    target = new_target_path(context.op.name, context.run.run_id)
    cache = dbt_parse_path()
    seed_parse(target, cache)
    variables = window_environment(window)
    if window is not None:
        described = ", ".join(f"{name}={value}" for name, value in variables.items())
        context.log.info(f"dbt window [{window[0]:%Y-%m-%d}, {window[1]:%Y-%m-%d}): {described}")
    with environment(variables):
        invocation = dbt.cli(list(BUILD_ARGS), context=context, target_path=target)
    try:
        yield from with_table_metrics(
            invocation.stream(), invocation.manifest, engine.readable_warehouse(), window, context
        )
    finally:
        keep_parse(target, cache)


def build_partitioned_models(
    partitions: dg.PartitionsDefinition, engine: Engine
) -> dg.AssetsDefinition:
    """Incremental models: replace exactly the partition window, in one dbt invocation."""

    @dbt_assets(
        manifest=load_manifest(),
        project=dbt_project,
        select=PARTITIONED,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=engine.partition_pool,
        op_tags=WAREHOUSE_OP_TAGS,
        name="dbt_partitioned_models",
    )
    def dbt_partitioned_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        """Incremental models: replace exactly the partition window, in one dbt invocation."""
        yield from _build(context, dbt, engine)

    return dbt_partitioned_models


def build_whole_tables(engine: Engine) -> dg.AssetsDefinition:
    """Current-state staging tables, dimensions and whole-table summaries, rebuilt whole."""

    @dbt_assets(
        manifest=load_manifest(),
        project=dbt_project,
        select=WHOLE_TABLES,
        dagster_dbt_translator=translator,
        pool=engine.table_pool,
        op_tags=WAREHOUSE_OP_TAGS,
        name="dbt_whole_tables",
        # Unpartitioned, so every run builds them once; declared so that a range run of any
        # selection, the whole graph included, is accepted by `dagster asset materialize`.
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def dbt_whole_tables(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        """Current-state staging tables, dimensions and whole-table summaries, rebuilt whole."""
        yield from _build(context, dbt, engine)

    return dbt_whole_tables
