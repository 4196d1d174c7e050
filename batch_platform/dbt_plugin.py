"""A dbt-duckdb plugin that gives dbt's DuckDB connection the `pii_mask(varchar)` function.

Declared in `dbt_project/profiles.yml`. Staging models call `pii_mask(email)`; the key is read
here from the environment, so SQL never carries it (see batch_platform.pii).
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from batch_platform.pii import mask, salt


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        key = salt()
        conn.create_function(
            "pii_mask",
            lambda value: mask(value, key),
            ["VARCHAR"],
            "VARCHAR",
            null_handling="special",
            side_effects=False,
        )
