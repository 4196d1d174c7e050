"""The dbt project and its manifest.

Dagster builds its asset graph from dbt's manifest, and the extract registry lives in it too, so
the code location must never start without one. `ensure_manifest` runs `dbt parse` when the
manifest is missing or older than any file of the dbt project: a newcomer who edits a model or a
`_sources.yml` and reloads the UI sees the change instead of a crash.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from collections.abc import Sequence
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from batch_platform.paths import DATA_DIR_ENV, DBT_PROJECT_DIR, data_dir
from batch_platform.warehouse import DUCKDB

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

# The dbt installed beside this interpreter, so nothing depends on an activated virtualenv.
DBT_EXECUTABLE = DUCKDB.dbt_executable


class PlatformDbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs it pays before dbt even starts.

    - dagster-dbt learns which dbt it drives by running `dbt --version` in every run process:
      a second dbt start-up per run (about 1.9 s here), which also asks the package index for
      a newer release. The dbt it runs is `DBT_EXECUTABLE`, the dbt-core installed beside
      this interpreter, so the version is that package's.
    - Before every invocation it builds a dbt adapter inside the run process (loading dbt's
      adapter, profile and project: 1.4 s per invocation here, 3.4 s for the first). It needs
      one only for `fetch_row_counts()` and `fetch_column_metadata()`, which query the
      warehouse while dbt runs; DuckDB's single write lock rules those out, and the platform
      reads its table figures after dbt exits instead (`transform/table_metrics.py`).

    Both are dagster-dbt's private members (`_cli_version`, `_initialize_dbt_core_adapter`);
    a test fails if dagster-dbt stops having them, rather than the savings silently vanishing.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


_WATCHED = ("models", "macros", "tests", "dbt_project.yml", "profiles.yml", "packages.yml")


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _WATCHED:
        path = project_dir / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
        elif path.is_dir():
            for child in path.rglob("*"):
                if child.is_file():
                    newest = max(newest, child.stat().st_mtime)
    return newest


def manifest_is_stale(project_dir: Path = DBT_PROJECT_DIR) -> bool:
    manifest = project_dir / "target" / "manifest.json"
    return not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project_dir)


def dbt_env() -> dict[str, str]:
    """The environment dbt runs with: the data folder made absolute so paths resolve anywhere."""
    return {**os.environ, DATA_DIR_ENV: str(data_dir())}


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Parse the dbt project if its manifest is missing or stale; return the manifest path."""
    manifest = project_dir / "target" / "manifest.json"
    if manifest_is_stale(project_dir):
        result = subprocess.run(
            [
                DBT_EXECUTABLE,
                "parse",
                "--project-dir",
                str(project_dir),
                "--profiles-dir",
                str(project_dir),
            ],
            cwd=project_dir,
            env=dbt_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not manifest.exists():
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise RuntimeError("dbt parse failed; its last lines:\n" + "\n".join(tail))
    return manifest


@cache
def load_manifest() -> dict[str, Any]:
    """The parsed manifest, prepared first if needed (read once per process)."""
    return json.loads(ensure_manifest().read_text())
