"""The database access method: a read-only connection to a service's database replica.

The connection URL comes from the environment variable the registry names (`connection_env`),
else from the registry's `connection_default` with `{data_dir}` filled in, so production points
at a replica by configuration only. Two schemes are understood:

    sqlite:///<absolute path>                    (the demo services' databases)
    postgresql://user:password@host:port/db      (also postgres://)

The platform only ever reads a service's database, so the connection itself refuses writes:
SQLite is opened with `mode=ro`, and PostgreSQL sessions start with
`default_transaction_read_only=on`. That guards against our own mistakes; the service's
database role should be read-only too.

A partition reads the rows whose watermark falls in its day, streamed from the driver as Arrow
record batches into the scratch DuckDB of a `PartitionLoad`, which checks the contract and
replaces the lake file. Memory stays bounded whatever the size of the day: nothing holds the
whole result in Python, and DuckDB spills to disk past its memory limit.

Connecting is retried with backoff on connection faults (stamina); the asset's Dagster retry
policy covers a read that breaks off. URLs are shown only through `redact_url`, and driver
messages are scrubbed of the password before they reach an exception, a log line or Dagster
metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_manager.dbapi
import adbc_driver_postgresql.dbapi
import adbc_driver_sqlite
import adbc_driver_sqlite.dbapi
import duckdb
import pyarrow as pa
import stamina

from batch_platform.extract.contract import quote_identifier
from batch_platform.extract.lake import PartitionLoad, PartitionStats, day_window
from batch_platform.paths import lake_dir
from batch_platform.redaction import redact_url
from batch_platform.registry import SourceSpec

SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}
URL_FORMS = "sqlite:///<absolute path> or postgresql://user:password@host:port/database"

# Rows per Arrow batch from SQLite: big enough that per-batch overhead vanishes, small enough
# (a few MB) to keep memory flat.
SQLITE_BATCH_ROWS = 65_536
CONNECT_ATTEMPTS = 4
CONNECT_TIMEOUT_SECONDS = 10

# Session settings holding the partition window on PostgreSQL (see `_postgres_query`).
_WINDOW_START = "batch_platform.window_start"
_WINDOW_END = "batch_platform.window_end"
# Marks the leading row of a SQLite read (see `_sqlite_query`); never a contract column name.
_SENTINEL = "__batch_platform_sentinel"


class DatabaseSourceError(RuntimeError):
    """A database source that cannot be read; the message names it and never holds a secret.

    `transient` says whether asking again later may help: a server that stayed unreachable
    through the connect retries, or a read that broke off, is; a missing table, column or
    database file, or a URL we cannot use, is not, and the extract asset fails at once for it
    instead of going through Dagster's retry policy.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class _ConnectFailed(Exception):
    """A connect attempt that failed for a reason worth retrying; the message is scrubbed."""


def _scrub(message: str, url: str) -> str:
    """A driver message made safe to show: the URL's password removed, first line only."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        message = message.replace(secret, "***")
    lines = redact_url(message).strip().splitlines()
    return lines[0] if lines else "no detail from the driver"


def connection_url(spec: SourceSpec, data_dir: Path) -> str:
    """The source's URL: its environment variable, else the registry default under `data_dir`."""
    env = spec.options["connection_env"]
    configured = os.environ.get(env)
    if configured:
        return configured
    default = spec.options.get("connection_default", "")
    if not default:
        raise DatabaseSourceError(
            f"{spec.path}: ${env} is not set and the registry has no connection_default; "
            f"set it to {URL_FORMS}"
        )
    # Quoted so a data folder with a space or `%` survives the URL round trip.
    return default.replace("{data_dir}", quote(str(data_dir)))


def _scheme(url: str) -> str | None:
    scheme, separator, _ = url.partition("://")
    return SCHEMES.get(scheme.lower()) if separator else None


def _sqlite_path(url: str) -> Path:
    """`sqlite:///abs/path` and `sqlite:////abs/path` both mean /abs/path (never relative)."""
    return Path("/" + unquote(urlsplit(url).path).lstrip("/"))


def _postgres_readonly_uri(url: str) -> str:
    """The libpq URI with read-only sessions, UTC and a connect timeout added to its options.

    `options` is appended to, not replaced, so a search_path or other setting in the configured
    URL still applies; ours come last and win. UTC makes `timestamptz` watermarks compare against
    UTC partition days.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [value for key, value in query if key == "options"]
    options += ["-c default_transaction_read_only=on", "-c TimeZone=UTC"]
    query = [(key, value) for key, value in query if key != "options"]
    query.append(("options", " ".join(options)))
    if not any(key == "connect_timeout" for key, _ in query):
        query.append(("connect_timeout", str(CONNECT_TIMEOUT_SECONDS)))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _connect(scheme: str, url: str) -> adbc_driver_manager.dbapi.Connection:
    try:
        if scheme == "sqlite":
            path = _sqlite_path(url)
            if not path.is_file():
                raise DatabaseSourceError(f"no database file at {path}")
            return adbc_driver_sqlite.dbapi.connect(f"file:{quote(str(path))}?mode=ro")
        return adbc_driver_postgresql.dbapi.connect(_postgres_readonly_uri(url))
    except adbc_driver_manager.OperationalError as error:
        # `from None`: the driver's own exception (and its text) must not ride along.
        raise _ConnectFailed(_scrub(str(error), url)) from None
    except adbc_driver_manager.Error as error:
        raise DatabaseSourceError(_scrub(str(error), url)) from None


def _open(scheme: str, url: str) -> adbc_driver_manager.dbapi.Connection:
    """Connect, retrying connection faults (server down, network) with backoff.

    Retries see only the scrubbed `_ConnectFailed`, never the URL: stamina logs each retry with
    the exception's repr. Other failures (no such file, authentication) are not retried.
    """
    try:
        for attempt in stamina.retry_context(
            on=_ConnectFailed,
            attempts=CONNECT_ATTEMPTS,
            wait_initial=0.5,
            wait_max=5.0,
            timeout=60.0,
        ):
            with attempt:
                return _connect(scheme, url)
    except _ConnectFailed as error:
        raise DatabaseSourceError(str(error), transient=True) from None


def open_readonly(url: str) -> adbc_driver_manager.dbapi.Connection:
    """A connection to the database at `url` through which no write can succeed.

    Raises DatabaseSourceError, with the URL redacted, for an unsupported URL or once the
    connect attempts are spent.
    """
    scheme = _scheme(url)
    if scheme is None:
        raise DatabaseSourceError(f"unsupported database URL {redact_url(url)}; use {URL_FORMS}")
    try:
        return _open(scheme, url)
    except DatabaseSourceError as error:
        raise DatabaseSourceError(
            f"cannot connect to {redact_url(url)}: {error}", transient=error.transient
        ) from None


def _table_columns(
    connection: adbc_driver_manager.dbapi.Connection, scheme: str, table: str
) -> list[str]:
    """The table's column names in order; empty when there is no such table or view."""
    with connection.cursor() as cursor:
        if scheme == "sqlite":
            cursor.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
        else:
            cursor.execute(
                "SELECT attname::text FROM pg_catalog.pg_attribute "
                "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum",
                (quote_identifier(table),),
            )
        return [row[0] for row in cursor.fetchall()]


def _select_list(spec: SourceSpec, present: set[str], as_text: bool) -> str:
    """Contract columns in contract order; an absent optional column reads as NULL."""
    items = []
    for column in spec.columns:
        name = quote_identifier(column.name)
        if column.name not in present:
            items.append(f"NULL AS {name}")
        elif as_text:
            items.append(f"CAST({name} AS TEXT) AS {name}")
        else:
            items.append(name)
    return ", ".join(items)


def _sqlite_query(spec: SourceSpec, table: str, watermark: str, present: set[str]) -> str:
    """The day's rows as text, behind one sentinel row that fixes every column's Arrow type.

    SQLite values have no fixed type, and the ADBC driver infers each column's Arrow type from
    the first batch: an integer column holding one `'abc'` later, or a column that is NULL for a
    whole first batch, would otherwise abort the read. Reading text and leading with a row of
    empty strings (marked by `_SENTINEL` = 1, dropped before staging) makes every column a string;
    the contract then types each value and quarantines the ones that do not fit.
    """
    sentinel = ", ".join(f"'' AS {quote_identifier(c.name)}" for c in spec.columns)
    # Identifiers are validated by the registry and quoted; the window is bound.
    return (
        f"SELECT 1 AS {_SENTINEL}, {sentinel} UNION ALL "  # noqa: S608
        f"SELECT 0, {_select_list(spec, present, as_text=True)} FROM {quote_identifier(table)} "
        f"WHERE {quote_identifier(watermark)} >= ? AND {quote_identifier(watermark)} < ?"
    )


def _sqlite_window(window: tuple[datetime, datetime]) -> tuple[str, str]:
    """The day bounds as bare dates, which sort correctly against any ISO timestamp text.

    `2026-03-02` sorts before every `2026-03-02 …` value, whether stored with microseconds,
    without them (Python's str() of a whole second), with milliseconds or with a `T`; a full
    `2026-03-02 00:00:00.000000` bound would wrongly exclude `2026-03-02 00:00:00`.
    """
    start, end = window
    return start.date().isoformat(), end.date().isoformat()


def _postgres_query(spec: SourceSpec, table: str, watermark: str, present: set[str]) -> str:
    """The day's rows, typed by PostgreSQL, bounded by the window held in session settings.

    The ADBC PostgreSQL driver streams a query through COPY only when it has no bind
    parameters; with parameters it buffers the whole result first. So the bounds are bound into
    `set_config` (transaction-local) and the query reads them back with `current_setting`, which
    PostgreSQL evaluates once per scan and can use with an index on the watermark.
    """
    column = quote_identifier(watermark)
    # Identifiers are validated by the registry and quoted; the window is bound via set_config.
    return (
        f"SELECT {_select_list(spec, present, as_text=False)} "  # noqa: S608
        f"FROM {quote_identifier(table)} "
        f"WHERE {column} >= current_setting('{_WINDOW_START}')::timestamp "
        f"AND {column} < current_setting('{_WINDOW_END}')::timestamp"
    )


def _with_positions(
    reader: pa.RecordBatchReader, has_sentinel: bool, counter: dict[str, int]
) -> pa.RecordBatchReader:
    """The reader's batches without the sentinel, plus `position`, the running row number."""
    names = [n for n in reader.schema.names if not (has_sentinel and n == _SENTINEL)]
    schema = pa.schema([reader.schema.field(n) for n in names] + [("_position", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        first = has_sentinel
        for batch in reader:
            counter["bytes"] += batch.nbytes
            if first:
                if batch.num_rows == 0 or batch.column(_SENTINEL)[0].as_py() != 1:
                    raise RuntimeError("SQLite returned table rows before the type sentinel")
                batch, first = batch.slice(1), False
            rows = counter["rows"]
            positions = pa.array(range(rows + 1, rows + batch.num_rows + 1), pa.int64())
            counter["rows"] += batch.num_rows
            yield pa.RecordBatch.from_arrays(
                [batch.column(n) for n in names] + [positions], schema=schema
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def _duckdb_columns(schema: pa.Schema) -> str:
    """`"name" TYPE, …` for the staging table, typed the way DuckDB reads these Arrow fields."""
    with duckdb.connect() as con:
        relation = con.from_arrow(schema.empty_table())
        return ", ".join(
            f"{quote_identifier(n)} {t}"
            for n, t in zip(relation.columns, relation.types, strict=True)
        )


def extract_database(spec: SourceSpec, day: date, data_dir: Path) -> PartitionStats:
    """Read a day's rows by watermark through a read-only connection; replace the partition.

    Every failure (no URL, unknown scheme, unreachable server, missing table or required
    column, a read that breaks off) raises DatabaseSourceError naming the source before
    anything is written, so the old partition file stays.
    """
    env, table = spec.options["connection_env"], spec.options["table"]
    url = connection_url(spec, data_dir)
    if os.environ.get(env):
        where = f"${env} ({redact_url(url)})"
    else:
        where = f"${env} (not set; registry default {redact_url(url)})"
    scheme = _scheme(url)
    if scheme is None:
        raise DatabaseSourceError(
            f"{spec.path}: unsupported database URL in {where}; use {URL_FORMS}"
        )
    try:
        connection = _open(scheme, url)
    except DatabaseSourceError as error:
        raise DatabaseSourceError(
            f"{spec.path}: cannot connect to the database at {where}: {error}",
            transient=error.transient,
        ) from None

    with connection:
        try:
            existing = _table_columns(connection, scheme, table)
            if not existing:
                raise DatabaseSourceError(
                    f'{spec.path}: table "{table}" not found in the database at {where}'
                )
            missing = [c.name for c in spec.columns if c.required and c.name not in existing]
            if missing:
                raise DatabaseSourceError(
                    f"{spec.path}: required column(s) {', '.join(missing)} missing from table "
                    f'"{table}" in the database at {where}; the service\'s schema changed'
                )
            stats = PartitionStats(input_files=1)
            contract = {c.name for c in spec.columns}
            stats.schema_drift = sorted(c for c in existing if c not in contract)
            _read(connection, scheme, spec, day, set(existing), stats, lake_dir(data_dir))
        except (adbc_driver_manager.Error, duckdb.Error) as error:
            raise DatabaseSourceError(
                f'{spec.path}: extracting table "{table}" from the database at {where} failed: '
                f"{_scrub(str(error), url)}",
                transient=True,
            ) from None
        return stats


def _read(
    connection: adbc_driver_manager.dbapi.Connection,
    scheme: str,
    spec: SourceSpec,
    day: date,
    present: set[str],
    stats: PartitionStats,
    lake_root: Path,
) -> None:
    """Stream the day's rows into a PartitionLoad and write it, filling `stats`."""
    table = spec.options["table"]
    watermark = spec.watermark or spec.event_time
    window = day_window(day)
    with connection.cursor() as cursor:
        if scheme == "sqlite":
            cursor.adbc_statement.set_options(
                **{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(SQLITE_BATCH_ROWS)}
            )
            cursor.execute(_sqlite_query(spec, table, watermark, present), _sqlite_window(window))
        else:
            cursor.execute(
                f"SELECT set_config('{_WINDOW_START}', $1, true), "
                f"set_config('{_WINDOW_END}', $2, true)",
                tuple(bound.isoformat(sep=" ") for bound in window),
            )
            cursor.fetchall()
            cursor.execute(_postgres_query(spec, table, watermark, present))
        counter = {"rows": 0, "bytes": 0}
        rows = _with_positions(cursor.fetch_record_batch(), scheme == "sqlite", counter)
        columns = _duckdb_columns(pa.schema(list(rows.schema)[:-1]))  # all but `position`
        with PartitionLoad(spec, day, lake_root, "columns", columns) as load:
            # Partition days are UTC: a timestamptz source column is typed in UTC too.
            load.con.execute("SET TimeZone = 'UTC'")
            load.con.register("source_rows", rows)
            names = ", ".join(quote_identifier(c.name) for c in spec.columns)
            # Names are validated contract columns, quoted; the origin is bound.
            load.con.execute(
                f"INSERT INTO input SELECT $origin, _position, {names} FROM source_rows",  # noqa: S608
                {"origin": table},
            )
            stats.bytes_read = counter["bytes"]
            load.write(stats)


def changed_days(spec: SourceSpec, data_dir: Path, since: str | None) -> dict[str, str]:
    """Days holding rows with a watermark newer than `since`, with the newest value per day.

    What the watermark sensor polls: one grouped query through the same read-only connection
    as the extract; `since` is bound, identifiers are validated and quoted.
    """
    url = connection_url(spec, data_dir)
    scheme = _scheme(url)
    if scheme is None:
        raise DatabaseSourceError(f"{spec.path}: unsupported database URL {redact_url(url)}")
    table = quote_identifier(spec.options["table"])
    mark = quote_identifier(spec.watermark or spec.event_time)
    if scheme == "sqlite":
        # Text timestamps sort as time; the day is the first ten characters.
        sql = (
            f"SELECT substr({mark}, 1, 10), max({mark}) FROM {table} "  # noqa: S608
            f"WHERE {mark} > ? GROUP BY 1"
        )
        parameters: tuple = (since or "",)
    else:
        sql = (
            f"SELECT to_char({mark}, 'YYYY-MM-DD'), "  # noqa: S608
            f"to_char(max({mark}), 'YYYY-MM-DD HH24:MI:SS.US') FROM {table} "
            f"WHERE $1::text = '' OR {mark} > $1::timestamp GROUP BY 1"
        )
        parameters = (since or "",)
    with open_readonly(url) as connection, connection.cursor() as cursor:
        try:
            cursor.execute(sql, parameters)
            return {day: newest for day, newest in cursor.fetchall() if day}
        except adbc_driver_manager.Error as error:
            raise DatabaseSourceError(
                f"{spec.path}: polling the watermark failed: {_scrub(str(error), url)}"
            ) from None
