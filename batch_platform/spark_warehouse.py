"""Apache Spark as the warehouse engine: the session dbt-spark's `session` method runs on.

dbt-spark's `session` method takes whatever `SparkSession.builder.getOrCreate()` returns. So
`batch-platform-dbt` (this module's `main`, the dbt executable Dagster runs when
BATCH_PLATFORM_WAREHOUSE=spark) creates that session first, prepares it, and only then runs
dbt in the same process:

- **The PII key stays out of SQL.** `pii_mask` is registered on the session as a Python
  function closing over the key read from the environment (`batch_platform.pii.mask`, the very
  function DuckDB gets through `batch_platform.dbt_plugin`), so the hashes are byte-equal on
  both engines and no SQL text, compiled file or log carries the key.
- **Tables persist between processes without a shared metastore.** Spark's default catalog is a
  Derby database in the working directory that one JVM at a time may open, so two Dagster steps
  (two dbt processes) could not run at once. The session uses Spark's in-memory catalog
  instead, and every table lives at a known folder, `<data>/spark/<schema>/<table>/` (dbt's
  `spark__location_clause`, dbt_project/macros/dialect.sql). A new session registers every
  folder found there again, from the schema the process that wrote it left beside it
  (`TABLE_FILE`), so tables are found with their column order and partitioning, even empty ones.
  Partitions are read from the folders (`manageFilesourcePartitions` off): nothing about a
  table lives in one process only, and two processes writing different days of a table never
  touch the same folder.
- **Readers that speak DuckDB keep working.** After dbt, `catalog.duckdb` beside the tables is
  rewritten: one DuckDB view per table over its Parquet files, in the model's column order
  (Spark moves a partition column last). The published snapshot and the table figures read it
  exactly as they read DuckDB's warehouse.

Where Spark runs comes from the environment only: `BATCH_PLATFORM_SPARK_REMOTE`
(`sc://host:15002`) connects to a cluster through Spark Connect, else
`BATCH_PLATFORM_SPARK_MASTER` (default `local[2]`) starts Spark in this process. A Spark that
cannot start (no Java, a wrong master URL) stops the invocation with one line naming what is
missing, before dbt builds or writes anything.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from glob import glob
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batch_platform import paths
from batch_platform.redaction import redact_url

MASTER_ENV = "BATCH_PLATFORM_SPARK_MASTER"
REMOTE_ENV = "BATCH_PLATFORM_SPARK_REMOTE"
DEFAULT_MASTER = "local[2]"
DEFAULT_CONNECT_PORT = 15002  # Spark Connect's own default
CONNECT_TIMEOUT_SECONDS = 10
# Written beside every table's Parquet files (Spark ignores names starting with `_`).
TABLE_FILE = "_batch_platform_table.json"
CATALOG_FILE = "catalog.duckdb"
# Spark's default location for a schema's folder; holds no table (each has its own location).
DATABASES_FOLDER = "_databases"
# The Spark settings every session needs; each line says why.
SESSION_CONFIG = {
    # Partitions are folders, listed when read: a day another process wrote is seen at once.
    "spark.sql.hive.manageFilesourcePartitions": "false",
    # A table rebuilt whole is written into the folder its dropped predecessor left (dbt drops
    # an external table, which keeps its files; the new one overwrites them).
    "spark.sql.legacy.allowNonEmptyLocationInCTAS": "true",
    # The lake's timestamps are UTC without a zone, as DuckDB's TIMESTAMP: keep them so.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.session.timeZone": "UTC",
}
# Settings of a Spark driver, which only a Spark started in this process takes (a Spark Connect
# server fixes them when it starts: docs/DEPLOY.md says which).
DRIVER_CONFIG = {
    # One process's catalog: no Derby metastore in the working directory, no lock between steps.
    "spark.sql.catalogImplementation": "in-memory",
    # dbt parses its own output lines: no progress bars on the console.
    "spark.ui.showConsoleProgress": "false",
}
# Only for Spark in this process (`local[...]`), a small machine and small days: one shuffle
# partition instead of 200 tiny tasks, and no web UI. A cluster keeps its own sizing (and
# adaptive execution, which picks partition counts from the data).
LOCAL_CONFIG = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.enabled": "false",
}


class SparkUnavailable(RuntimeError):
    """Spark cannot start here; the message is one line naming what is missing."""


def catalog_path(root: Path | None = None) -> Path:
    """The DuckDB file of views over Spark's tables, for readers that speak DuckDB."""
    return paths.spark_dir(root) / CATALOG_FILE


def java_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why a local Spark could not start a JVM, or None if Java is there."""
    environ = dict(os.environ if environ is None else environ)
    home = environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            return f"JAVA_HOME={home} has no bin/java: point it at a Java 17 installation"
        return None
    if shutil.which("java", path=environ.get("PATH")) is None:
        return "no Java found (no JAVA_HOME, no java on PATH): install Java 17 or set JAVA_HOME"
    return None


def connect_problem(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str | None:
    """Why the Spark Connect server at `url` cannot be reached, or None.

    Asked before the session is built: pyspark's client retries an unreachable server with
    backoff for many minutes (measured: over 10 on a closed port), where a dbt step should
    fail at once, naming the address.
    """
    parts = urlsplit(url)
    if parts.scheme != "sc" or not parts.hostname:
        return "expected sc://host[:port], for example sc://spark-connect:15002"
    try:
        port = parts.port or DEFAULT_CONNECT_PORT
    except ValueError:
        return "the port is not a number"
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {parts.hostname}:{port} ({error.strerror or error})"
    return None


def start_session(root: Path | None = None):
    """The Spark session dbt will run on, prepared; SparkUnavailable if Spark cannot start."""
    from pyspark.sql import SparkSession

    remote = os.environ.get(REMOTE_ENV)
    builder = SparkSession.builder.appName("batch_platform")
    if remote:
        where = f"Spark Connect at {REMOTE_ENV}={redact_url(remote)}"
        if problem := connect_problem(remote):
            raise SparkUnavailable(f"Spark cannot start with {where}: {problem}")
        builder = builder.remote(remote)
    else:
        if problem := java_problem():
            raise SparkUnavailable(f"Spark cannot start: {problem}")
        master = os.environ.get(MASTER_ENV) or DEFAULT_MASTER
        builder = builder.master(master)
        # Spark's Python workers (the functions below) run on this interpreter, not `python3`.
        builder = builder.config("spark.pyspark.python", sys.executable)
        # A schema dbt creates gets its (empty) folder here, not in the working directory.
        builder = builder.config(
            "spark.sql.warehouse.dir", str(paths.spark_dir(root) / DATABASES_FOLDER)
        )
        where = f"{MASTER_ENV}={master}"
        for name, value in DRIVER_CONFIG.items():
            builder = builder.config(name, value)
        if master.startswith("local"):
            for name, value in LOCAL_CONFIG.items():
                builder = builder.config(name, value)
    for name, value in SESSION_CONFIG.items():
        builder = builder.config(name, value)
    try:
        spark = builder.getOrCreate()
        spark.sql("select 1").collect()
    except Exception as error:  # noqa: BLE001 - reported as one line, below
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SparkUnavailable(f"Spark cannot start with {where}: {first}") from None
    if not remote:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def register_functions(spark, key: bytes) -> None:
    """The functions the models call that Spark lacks: `pii_mask` (the keyed hash, key from
    the environment) and `lake_has_files` (whether a lake glob matches a file yet)."""
    from pyspark import cloudpickle
    from pyspark.sql.types import BooleanType, StringType

    from batch_platform import pii

    # Shipped to Spark's Python workers by value: a cluster's workers need not have the
    # platform installed to run the very function DuckDB runs.
    cloudpickle.register_pickle_by_value(pii)
    mask = pii.mask
    spark.udf.register("pii_mask", lambda value: mask(value, key), StringType())
    spark.udf.register(
        "lake_has_files", lambda pattern: bool(glob(pattern, recursive=True)), BooleanType()
    )


def _table_folders(root: Path | None) -> Iterable[tuple[str, str, Path]]:
    base = paths.spark_dir(root)
    if not base.is_dir():
        return

    def folders(parent: Path) -> list[Path]:
        # `_databases`, `_temporary`, `.spark-staging-*`: Spark's own, never a schema or table.
        return sorted(p for p in parent.iterdir() if p.is_dir() and p.name[0] not in "._")

    for schema in folders(base):
        for table in folders(schema):
            yield schema.name, table.name, table


def register_tables(spark, root: Path | None = None) -> list[str]:
    """Register every table folder under `<data>/spark` in this session's catalog; their names.

    A folder without its table file (a process died before writing it) is registered from its
    Parquet files (schema and day partitions inferred), or skipped when it holds none.
    """
    from pyspark.sql.types import StructType

    registered = []
    for schema, table, folder in _table_folders(root):
        described = folder / TABLE_FILE
        spark.sql(
            f"create database if not exists `{schema}` location :location",
            args={"location": str(folder.parent)},
        )
        if not described.is_file():
            # Written by a process that died before describing it: read what its files say.
            if any(folder.glob("**/part-*.parquet")):
                spark.sql(
                    f"create table if not exists `{schema}`.`{table}` using parquet "
                    "location :location",
                    args={"location": str(folder)},
                )
                registered.append(f"{schema}.{table}")
            continue
        spec = json.loads(described.read_text())
        fields = StructType.fromJson(spec["schema"]).fields
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in fields)
        partitioned = ", ".join(f"`{name}`" for name in spec["partition_by"])
        spark.sql(
            f"create table if not exists `{schema}`.`{table}` ({columns}) using parquet "  # noqa: S608 - names from our own folders
            + (f"partitioned by ({partitioned}) " if partitioned else "")
            + "location :location",
            args={"location": str(folder)},
        )
        registered.append(f"{schema}.{table}")
    return registered


def describe_tables(spark, models: Sequence[dict[str, Any]], root: Path | None = None) -> None:
    """Write each built model's table file: its schema, partitioning and column order.

    `models` are (schema, alias, compiled SQL) of the models dbt built; the column order is the
    model's own select list (Spark stores a partition column last), read from the compiled SQL
    by analysis only, nothing executed.
    """
    for model in models:
        folder = paths.spark_dir(root) / model["schema"] / model["alias"]
        name = f"{model['schema']}.{model['alias']}"
        if not folder.is_dir() or not spark.catalog.tableExists(name):
            continue
        table = spark.table(name)
        try:
            order = spark.sql(model["compiled_code"]).columns
        except Exception:  # noqa: BLE001 - a model whose SQL no longer resolves keeps Spark's order
            order = table.columns
        partition_by = [
            column.name
            for column in spark.catalog.listColumns(model["alias"], model["schema"])
            if column.isPartition
        ]
        spec = {
            "schema": json.loads(table.schema.json()),
            "partition_by": partition_by,
            "columns": [c for c in order if c in table.columns]
            + [c for c in table.columns if c not in order],
        }
        partial = folder / f".{TABLE_FILE}.{uuid.uuid4().hex}.tmp"
        partial.write_text(json.dumps(spec, indent=1))
        os.replace(partial, folder / TABLE_FILE)


def write_catalog(root: Path | None = None) -> Path:
    """`catalog.duckdb`: a DuckDB view per Spark table over its Parquet files, replaced whole.

    Written to a temporary file and renamed over the old one, so a reader (the snapshot, the
    table figures) opens either catalog, never half of one. An empty table (no file yet) is an
    empty DuckDB table of the same columns.
    """
    import duckdb
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    target = catalog_path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    with duckdb.connect(str(partial)) as con:
        for schema, table, folder in _table_folders(root):
            described = folder / TABLE_FILE
            if not described.is_file():
                continue
            spec = json.loads(described.read_text())
            con.execute(f'create schema if not exists "{schema}"')
            relation = f'"{schema}"."{table}"'
            selected = ", ".join(f'"{c}"' for c in spec["columns"])
            # The files a table holds: `part-*` in the table's folder or one partition folder
            # down, never those of a write in progress (`_temporary/`, `.spark-staging-*/`).
            partitions = "".join(f"/{column}=*" for column in spec["partition_by"])
            files = str(folder) + partitions + "/part-*.parquet"
            if glob(files):
                hive = "true" if spec["partition_by"] else "false"
                # A view's text cannot take parameters: the path is a quoted literal.
                literal = "'" + files.replace("'", "''") + "'"
                con.execute(
                    f"create view {relation} as select {selected} from read_parquet("  # noqa: S608 - our own folders
                    f"{literal}, hive_partitioning = {hive}, union_by_name = true)"
                )
            else:
                arrow = to_arrow_schema(StructType.fromJson(spec["schema"]))
                empty = pa.Table.from_batches([], schema=arrow)  # noqa: F841 - read by DuckDB
                con.execute(f"create table {relation} as select {selected} from empty")  # noqa: S608
    os.replace(partial, target)
    return target


# A file Spark listed and then could not open: another process replaced that partition between
# the listing and the read (its insert overwrite deletes the old files and moves new ones in).
_REPLACED_WHILE_READ = ("FileNotFoundException", "FILE_NOT_EXIST")
READ_ATTEMPTS = 5


def retry_replaced_reads(spark) -> None:
    """Run each statement of dbt's cursor again when a partition it read was replaced meanwhile.

    Parquet tables have no snapshots: a query that lists a partition's files while another
    process (a day-run side by side) overwrites that partition finds a file gone. Such a
    statement failed as a whole before committing anything (Spark writes into a staging folder
    and moves it in only at the end), so it is run again, up to `READ_ATTEMPTS` times, after
    the session forgets the file listings it cached. Queries are collected at once, so the
    retry covers reading their rows too. This patches dbt-spark's session cursor, the only way
    into how dbt runs a statement on the session method.
    """
    import time

    from dbt.adapters.events.logging import AdapterLogger
    from dbt.adapters.spark import session
    from dbt_common.exceptions import DbtRuntimeError

    logger = AdapterLogger("Spark")

    def forget_listings() -> None:
        # Each catalog table keeps the file listing it was first read with.
        for database in spark.catalog.listDatabases():
            for table in spark.catalog.listTables(database.name):
                if not table.isTemporary:
                    spark.catalog.refreshTable(f"`{database.name}`.`{table.name}`")

    def execute(cursor, sql: str, *parameters: Any) -> None:
        if parameters:
            sql = sql % parameters
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                frame = spark.sql(sql)
                rows = frame.collect()
            except Exception as error:
                replaced = any(sign in str(error) for sign in _REPLACED_WHILE_READ)
                if not replaced or attempt == READ_ATTEMPTS:
                    raise DbtRuntimeError(str(error)) from error
                logger.info(
                    f"a partition this statement read was replaced meanwhile; running it again "
                    f"({attempt + 1}/{READ_ATTEMPTS})"
                )
                forget_listings()
                time.sleep(attempt)
                continue
            cursor._df, cursor._rows = frame, rows
            return

    session.Cursor.execute = execute


def _models_built(result) -> list[dict[str, Any]]:
    built = []
    for item in getattr(result, "results", None) or []:
        node = getattr(item, "node", None)
        if getattr(node, "resource_type", None) != "model" or not getattr(
            node, "compiled_code", None
        ):
            continue
        built.append(
            {"schema": node.schema, "alias": node.alias, "compiled_code": node.compiled_code}
        )
    return built


def report_error(message: str) -> None:
    """One line saying why dbt did not start, where whoever runs dbt reads dbt's own errors.

    dagster-dbt runs dbt with DBT_LOG_FORMAT=json and quotes the error events of its output in
    the step's failure, so the line goes out as such an event there; plainly to stderr else.
    """
    if os.environ.get("DBT_LOG_FORMAT") != "json":
        print(message, file=sys.stderr)
        return
    event = {
        "info": {
            "name": "MainEncounteredError",
            "code": "Z002",
            "level": "error",
            "msg": message,
            "ts": datetime.now(UTC).isoformat(),
            "invocation_id": "",
            "pid": os.getpid(),
            "thread": "MainThread",
            "category": "",
            "extra": {},
        },
        "data": {"exc": message},
    }
    print(json.dumps(event), flush=True)


def run_dbt(args: Sequence[str], root: Path | None = None) -> int:
    """dbt `args` on a prepared Spark session; dbt's exit code (0, 1 failure, 2 error)."""
    from dbt.cli.main import dbtRunner

    from batch_platform.demo_mode import SettingsError
    from batch_platform.pii import salt

    try:
        key = salt()
    except SettingsError as error:
        report_error(f"pii_mask: {error}")
        return 2
    try:
        spark = start_session(root)
    except SparkUnavailable as error:
        report_error(str(error))
        return 2
    register_functions(spark, key)
    register_tables(spark, root)
    retry_replaced_reads(spark)
    outcome = dbtRunner().invoke(list(args))
    built = _models_built(outcome.result)
    if built:
        describe_tables(spark, built, root)
        write_catalog(root)
    if outcome.exception is not None:
        return 2
    return 0 if outcome.success else 1


def main() -> None:
    """`batch-platform-dbt`: dbt's command line, on Spark."""
    sys.exit(run_dbt(sys.argv[1:]))
