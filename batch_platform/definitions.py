"""The code location: assembles the platform's definitions and applies cross-cutting policy once.

Everything here is assembly. The extract assets come from the registry in the dbt sources, the
transform assets from the dbt manifest; adding a service or a model changes YAML or SQL, not
this file.
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from batch_platform.dbt_project import DBT_EXECUTABLE, dbt_project, load_manifest
from batch_platform.extract.factory import build_extract_assets
from batch_platform.registry import load_registry
from batch_platform.transform.dbt_assets import dbt_partitioned_models, dbt_unpartitioned_models

extract_assets = build_extract_assets(load_registry(load_manifest()))

defs = dg.Definitions(
    assets=[*extract_assets, dbt_partitioned_models, dbt_unpartitioned_models],
    resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
)
