"""A dbt-duckdb plugin that gives dbt's DuckDB connection the `pii_mask(varchar)` function.

Declared in `dbt_project/profiles.yml`. Staging models call `pii_mask(email)`; the key is read
here from the environment, so SQL never carries it (see batch_platform.pii). Outside the demo
(`batch_platform.demo_mode`) a missing BATCH_PLATFORM_PII_SALT, or one holding the public demo
key, refuses the connection: dbt stops before any model is built, with one line naming the
variable, instead of writing hashes anyone can reverse. The rule is imported without Dagster,
which would add about half a second to every dbt invocation.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt_common.exceptions import DbtRuntimeError
from duckdb import DuckDBPyConnection

from batch_platform.demo_mode import SettingsError
from batch_platform.pii import mask, salt


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        try:
            key = salt()
        except SettingsError as error:
            # dbt reports its own runtime errors as one line, without a Python traceback.
            raise DbtRuntimeError(f"pii_mask: {error}") from None
        conn.create_function(
            "pii_mask",
            lambda value: mask(value, key),
            ["VARCHAR"],
            "VARCHAR",
            null_handling="special",
            side_effects=False,
        )
