"""Which engine runs the dbt models: DuckDB (the default) or Apache Spark.

`BATCH_PLATFORM_WAREHOUSE=duckdb|spark`, read through the settings resource
(`PlatformSettings.engine`) when the definitions load. The asset graph, partitions, checks and
automation are the same on both; what an engine decides is here and nowhere else:

- the dbt target (`dbt_project/profiles.yml`) and the executable that runs dbt: plain `dbt` for
  DuckDB; `batch-platform-dbt` for Spark, which prepares the Spark session first
  (`batch_platform.spark_warehouse`);
- which steps share a pool. DuckDB allows one writer, so every step that writes or reads the
  warehouse file takes `duckdb_warehouse` (limit 1, deploy/dagster.yaml). Spark writes each day
  of a partitioned model into a folder of its own, so partition runs go side by side with no
  pool; the whole tables (rebuilt into the same folders by every run) and the snapshot that
  reads them take `spark_tables`, one at a time;
- the DuckDB file that the snapshot and the table figures read: the warehouse itself, or for
  Spark the catalog of views over Spark's Parquet tables (`spark_warehouse.catalog_path`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from batch_platform import paths
from batch_platform.demo_mode import SettingsError

WAREHOUSE_ENV = "BATCH_PLATFORM_WAREHOUSE"
DUCKDB_POOL = "duckdb_warehouse"
SPARK_TABLES_POOL = "spark_tables"


@dataclass(frozen=True)
class Engine:
    name: str
    dbt_target: str
    executable_name: str
    partition_pool: str | None  # the pool of the partitioned models' step (None: no pool)
    table_pool: str  # the pool of the whole tables' step and of the snapshot

    @property
    def dbt_executable(self) -> str:
        """The executable installed beside this interpreter (no activated virtualenv needed)."""
        return str(Path(sys.executable).with_name(self.executable_name))

    def readable_warehouse(self, root: Path | None = None) -> Path:
        """The DuckDB file holding every model as a table or view, for the snapshot and figures."""
        if self.name == "spark":
            from batch_platform.spark_warehouse import catalog_path

            return catalog_path(root)
        return paths.warehouse_path(root)


DUCKDB = Engine("duckdb", "dev", "dbt", DUCKDB_POOL, DUCKDB_POOL)
SPARK = Engine("spark", "spark", "batch-platform-dbt", None, SPARK_TABLES_POOL)
ENGINES = {engine.name: engine for engine in (DUCKDB, SPARK)}


def engine(name: str | None) -> Engine:
    """The engine named (unset or empty: DuckDB); SettingsError naming the choices otherwise."""
    if not name:
        return DUCKDB
    if name not in ENGINES:
        choices = "|".join(ENGINES)
        raise SettingsError(f"{WAREHOUSE_ENV}={name!r} is not one of {choices}")
    return ENGINES[name]
