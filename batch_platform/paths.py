"""Where runtime data lives.

Everything the platform writes at run time sits under one data folder so that a test, a
benchmark or a second checkout can point the whole platform elsewhere with one environment
variable, BATCH_PLATFORM_DATA_DIR. The default is `data/` in the project root. The folders
under it are named here only: code that is handed a data folder (an extract, a test) passes it
as `root` instead of building the path again.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DATA_DIR_ENV = "BATCH_PLATFORM_DATA_DIR"


def data_dir() -> Path:
    """The runtime data folder (absolute), from BATCH_PLATFORM_DATA_DIR or `<project>/data`."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).resolve() if configured else PROJECT_ROOT / "data"


def landing_dir(root: Path | None = None) -> Path:
    """Where services' outbox relays deliver event files (one folder per service/topic/day)."""
    return (root or data_dir()) / "landing"


def services_dir(root: Path | None = None) -> Path:
    """The simulated services' own databases (SQLite), the demo's database and API sources.

    The registry's `connection_default`s name it as `{data_dir}/services/`.
    """
    return (root or data_dir()) / "services"


def lake_dir(root: Path | None = None) -> Path:
    """The raw lake: <lake>/raw/<service>/<entity>/dt=YYYY-MM-DD/ and <lake>/quarantine/.

    dbt finds the same folder through its sources' `meta.lake` (`dbt_project/models/staging`).
    """
    return (root or data_dir()) / "lake"


def dbt_parse_path(root: Path | None = None) -> Path:
    """dbt's parse of the project as the last dbt invocation over this data folder left it,
    for the next one to start from (transform/dbt_invocation.py). It lives with the data
    folder because dbt's profile names the warehouse in it: a parse made for another folder
    would not fit."""
    return (root or data_dir()).resolve() / "dbt" / "partial_parse.msgpack"


def warehouse_path(root: Path | None = None) -> Path:
    """The DuckDB warehouse dbt writes (one writer at a time)."""
    return (root or data_dir()) / "warehouse.duckdb"


def spark_dir(root: Path | None = None) -> Path:
    """Apache Spark's warehouse (BATCH_PLATFORM_WAREHOUSE=spark): one Parquet folder per dbt
    model, `<spark>/<schema>/<table>/`, partitioned models as `<column>=YYYY-MM-DD/` folders.

    dbt finds the same folder through `BATCH_PLATFORM_DATA_DIR` (`spark__location_clause` in
    dbt_project/macros/dialect.sql). Spark keeps no catalog between processes: every session
    registers the folders found here again (`batch_platform.spark_warehouse`).
    """
    return (root or data_dir()).resolve() / "spark"


def landscape_manifest_path(root: Path | None = None) -> Path:
    """The simulator's ground truth for a generated landscape; its presence marks the demo."""
    return (root or data_dir()) / "landscape.json"
