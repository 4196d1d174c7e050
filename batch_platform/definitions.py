"""The code location: assembles the platform's definitions and applies cross-cutting policy once.

Everything here is assembly. The extract assets come from the registry in the dbt sources, the
transform assets from the dbt manifest; adding a service or a model changes YAML or SQL, not
this file. Freshness and automation are applied to every asset by layer (automation.py).
"""

import dagster as dg
from dagster_dbt import DbtCliResource

from batch_platform.automation import apply_policies, automation_sensor
from batch_platform.dbt_project import DBT_EXECUTABLE, dbt_project, load_manifest
from batch_platform.extract.factory import build_extract_assets
from batch_platform.publish import analytics_snapshot
from batch_platform.registry import load_registry
from batch_platform.run_health import dead_run_check
from batch_platform.schedules import build_catch_up_schedule
from batch_platform.sensors import (
    build_landing_sensor,
    build_watermark_sensor,
    run_failure_alert,
)
from batch_platform.transform.dbt_assets import (
    dbt_current_state_models,
    dbt_dimension_models,
    dbt_partitioned_models,
)

registry = load_registry(load_manifest())

defs = dg.Definitions(
    assets=[
        *build_extract_assets(registry),
        dbt_current_state_models,
        dbt_partitioned_models,
        dbt_dimension_models,
        analytics_snapshot,
    ],
    sensors=[
        build_landing_sensor(registry),
        build_watermark_sensor(registry),
        automation_sensor,
        run_failure_alert,
        dead_run_check,
    ],
    schedules=[build_catch_up_schedule(registry)],
    # One process per run, not one per step: every process loads the dbt manifest again (seconds
    # each), and a run's steps are mostly sequential anyway (dbt holds the warehouse pool).
    executor=dg.in_process_executor,
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
).map_asset_specs(func=apply_policies)
