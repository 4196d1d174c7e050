"""The code location: assembles the platform's definitions and applies cross-cutting policy once.

Everything here is assembly. The extract assets come from the registry in the dbt sources, the
transform assets from the dbt manifest; adding a service or a model changes YAML or SQL, not
this file. Freshness and automation are applied to every asset by layer (automation.py).
"""

import dagster as dg

from batch_platform.automation import apply_policies, automation_sensor
from batch_platform.dbt_project import PlatformDbtCli, dbt_project, load_manifest
from batch_platform.execution import select_executor
from batch_platform.extract.factory import build_extract_assets
from batch_platform.extract.quarantine import build_quarantine_asset
from batch_platform.partitions import daily_partitions_from_environment
from batch_platform.publish import build_analytics_snapshot
from batch_platform.registry import load_registry
from batch_platform.run_health import dead_run_check
from batch_platform.schedules import build_catch_up_schedule
from batch_platform.sensors import (
    build_downstream_sensor,
    build_new_data_sensor,
    day_reach,
    run_failure_alert,
)
from batch_platform.settings import check_settings
from batch_platform.transform.dbt_assets import (
    build_partitioned_models,
    build_whole_tables,
)

registry = load_registry(load_manifest())
settings = check_settings(registry)  # outside the demo, a missing secret stops loading here
days = daily_partitions_from_environment()  # the only place the platform's days are read
extracts = build_extract_assets(registry, days)
extract_keys = [key for asset in extracts for key in asset.keys]
engine = settings.engine  # BATCH_PLATFORM_WAREHOUSE: DuckDB unless `spark` (warehouse.py)
dbt_partitioned_models = build_partitioned_models(days, engine)
dbt_whole_tables = build_whole_tables(engine)
analytics_snapshot = build_analytics_snapshot(engine)
# Everything above the extracts, which the downstream sensor moves in one run per batch of days.
transforms = [
    build_quarantine_asset(registry, days),
    dbt_partitioned_models,
    dbt_whole_tables,
    analytics_snapshot,
]

defs = dg.Definitions(
    assets=[*extracts, *transforms],
    sensors=[
        build_new_data_sensor(registry, days),
        build_downstream_sensor(
            extract_keys=extract_keys,
            downstream_keys=[key for asset in transforms for key in asset.keys],
            partitions=days,
            reach=day_reach([s for a in [*extracts, *transforms] for s in a.specs], extract_keys),
        ),
        automation_sensor,
        run_failure_alert,
        dead_run_check,
    ],
    schedules=[build_catch_up_schedule(registry, days, production=settings.production)],
    # In process unless BATCH_PLATFORM_EXECUTOR=celery (execution.py): one process per run, not
    # one per step, since every process loads the dbt manifest again (seconds each) and a run's
    # steps are mostly sequential anyway (dbt holds the warehouse pool).
    executor=select_executor(),
    resources={
        "dbt": PlatformDbtCli(
            project_dir=dbt_project, dbt_executable=engine.dbt_executable, target=engine.dbt_target
        ),
        "settings": settings,
    },
).map_asset_specs(func=apply_policies)
