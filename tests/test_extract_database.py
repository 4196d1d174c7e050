"""The database access method against real databases: SQLite files and the PostgreSQL server.

No mocks: each test builds a small service database, runs the extractor for one day and reads
back the Parquet files it wrote. The rows span three days and include contract breaches, a
duplicate key, a column the contract does not know, and timestamps spelled several ways.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi
import dagster as dg
import pyarrow.parquet as pq
import pytest
import stamina
import stamina.instrumentation

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.extract import database
from batch_platform.extract.database import (
    DatabaseSourceError,
    connection_url,
    extract_database,
    open_readonly,
)
from batch_platform.extract.factory import ROWS_ACCOUNTED_FOR, build_extract_asset
from batch_platform.extract.lake import partition_path
from batch_platform.paths import DATA_DIR_ENV
from batch_platform.redaction import redact_url
from batch_platform.registry import load_registry

DAY = date(2026, 3, 2)

INSERT_MOVEMENT = (
    "INSERT INTO stock_movements (movement_id, product_id, order_id, quantity, reason, "
    "occurred_at, updated_at) VALUES ({})"
)
# In table order, which is read order: positions 1.. go to the rows of DAY in this order. m0 and
# m9 lie outside DAY; the second m1 is a duplicate key (the first read wins), m4 has a reason
# outside the accepted values, m5 no product_id. Updated times are spelled with and without
# microseconds and with a `T`. The first two rows of the day have no order_id, so with tiny
# batches the first batch holds only NULLs there (the case the SQLite type sentinel is for).
MOVEMENTS = [
    ("m0", "p1", None, 4, "restock", "2026-03-01 08:00:00.000000", "2026-03-01 23:59:59.999999"),
    ("m2", "p2", None, 10, "restock", "2026-03-02 00:00:00", "2026-03-02 00:00:00"),
    ("m3", "p2", None, 3, "adjustment", "2026-03-02 11:00:00", "2026-03-02 23:59:59.999999"),
    ("m1", "p1", "o1", -2, "sale", "2026-03-02 09:00:00", "2026-03-02 09:00:00.000000"),
    ("m1", "p1", "o1", -2, "sale", "2026-03-02 09:00:00", "2026-03-02 09:30:00.000000"),
    ("m4", "p3", None, 5, "theft", "2026-03-02 12:00:00", "2026-03-02 12:00:00.000000"),
    ("m5", None, "o2", -1, "sale", "2026-03-02 13:00:00", "2026-03-02 13:00:00.000000"),
    ("m7", "p3", "o4", -1, "sale", "2026-03-02 15:00:00", "2026-03-02T15:00:00"),
    ("m9", "p1", None, 4, "restock", "2026-03-03 00:00:00.000000", "2026-03-03 00:00:00"),
]
# SQLite keeps any value in any column; PostgreSQL would refuse this one at insert.
SQLITE_ONLY_MOVEMENTS = [
    ("m6", "p1", "o3", "two", "sale", "2026-03-02 14:00:00", "2026-03-02 14:00:00.000000"),
]
EXPECTED_MOVEMENTS = [
    ("m1", "p1", "o1", -2, datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 9)),
    ("m2", "p2", None, 10, datetime(2026, 3, 2), datetime(2026, 3, 2)),
    ("m3", "p2", None, 3, datetime(2026, 3, 2, 11), datetime(2026, 3, 2, 23, 59, 59, 999999)),
    ("m7", "p3", "o4", -1, datetime(2026, 3, 2, 15), datetime(2026, 3, 2, 15)),
]
EXPECTED_QUARANTINE = [
    (5, "reason: not an accepted value, got theft"),
    (6, "missing required field product_id"),
]
SQLITE_EXPECTED_QUARANTINE = [*EXPECTED_QUARANTINE, (8, "quantity: expected INTEGER, got two")]

CUSTOMERS = [
    ("c1", "ann@ex.com", "Ann Lee", "DE", "2026-01-05 10:00:00", "2026-03-02 08:00:00", "gold"),
    ("c2", "bo@ex.com", "Bo Chan", "FR", "2026-02-01 10:00:00", "2026-03-02 23:30:00", None),
    ("c3", "cy@ex.com", "Cy Diaz", "ES", "2026-02-01 10:00:00", "2026-03-03 00:30:00", None),
]


@pytest.fixture(scope="module")
def specs():
    return {spec.name: spec for spec in load_registry(load_manifest())}


@pytest.fixture(autouse=True)
def _no_configured_urls(monkeypatch):
    """Tests choose their URL; a developer's own INVENTORY_DB_URL must not leak in."""
    for env in ("INVENTORY_DB_URL", "CUSTOMERS_DB_URL"):
        monkeypatch.delenv(env, raising=False)


def make_inventory_sqlite(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE stock_movements (movement_id TEXT, product_id TEXT, order_id TEXT, "
            "quantity INTEGER, reason TEXT, occurred_at TEXT, updated_at TEXT, "
            "warehouse TEXT DEFAULT 'w1')"
        )
        con.executemany(
            INSERT_MOVEMENT.format(", ".join("?" * 7)), MOVEMENTS + SQLITE_ONLY_MOVEMENTS
        )
        con.execute(
            "CREATE TABLE stock_levels (product_id TEXT PRIMARY KEY, on_hand INTEGER, "
            "updated_at TEXT)"
        )
        con.execute("INSERT INTO stock_levels VALUES ('p1', 7, '2026-03-02 18:00:00.000000')")
    return path


def make_customers_sqlite(path: Path) -> Path:
    """No `phone` column (optional in the contract), and a `loyalty_tier` it does not know."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE customers (customer_id TEXT, email TEXT, full_name TEXT, country TEXT, "
            "created_at TEXT, updated_at TEXT, loyalty_tier TEXT)"
        )
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", CUSTOMERS)
    return path


def lake_rows(data_dir: Path, spec, zone: str = "raw") -> list[dict]:
    # ParquetFile, not read_table: no hive `dt` column inferred from the folder name.
    path = partition_path(data_dir / "lake", zone, spec, DAY)
    return pq.ParquetFile(path).read().to_pylist()


def movement_tuples(rows: list[dict]) -> list[tuple]:
    keys = ("movement_id", "product_id", "order_id", "quantity", "occurred_at", "updated_at")
    return [tuple(row[k] for k in keys) for row in rows]


def quarantine_tuples(rows: list[dict]) -> list[tuple]:
    return [(row["position"], row["reason"]) for row in rows]


def partition_bytes(data_dir: Path, spec) -> tuple[bytes, bytes]:
    lake = data_dir / "lake"
    return tuple(
        partition_path(lake, zone, spec, DAY).read_bytes() for zone in ("raw", "quarantine")
    )


# --- SQLite -------------------------------------------------------------------------------


def test_sqlite_day_is_checked_loaded_and_idempotent(specs, tmp_path, monkeypatch):
    spec = specs["inventory__stock_movements"]
    data_dir = tmp_path / "data dir%"  # the default URL must survive a space and a percent
    make_inventory_sqlite(data_dir / "services" / "inventory.sqlite")
    monkeypatch.setattr(database, "SQLITE_BATCH_ROWS", 2)  # many batches, NULL-only first one

    stats = extract_database(spec, DAY, data_dir)

    assert (stats.rows_read, stats.rows_loaded, stats.rows_duplicate) == (8, 4, 1)
    assert stats.rows_quarantined == 3
    assert stats.quarantine_reasons == {
        "missing required field product_id": 1,
        "quantity: expected INTEGER": 1,
        "reason: not an accepted value": 1,
    }
    assert stats.schema_drift == ["warehouse"]
    assert stats.input_files == 1 and stats.bytes_read > 0
    assert stats.watermark == "2026-03-02T23:59:59.999999"
    assert movement_tuples(lake_rows(data_dir, spec)) == EXPECTED_MOVEMENTS
    quarantine = lake_rows(data_dir, spec, "quarantine")
    assert quarantine_tuples(quarantine) == SQLITE_EXPECTED_QUARANTINE
    assert {row["origin"] for row in quarantine} == {"stock_movements"}

    first = partition_bytes(data_dir, spec)
    again = extract_database(spec, DAY, data_dir)
    assert again == stats
    assert partition_bytes(data_dir, spec) == first


def test_a_contract_column_named_reason_keeps_its_values(specs, tmp_path):
    spec = specs["inventory__stock_movements"]
    make_inventory_sqlite(tmp_path / "services" / "inventory.sqlite")
    extract_database(spec, DAY, tmp_path)
    reasons = [row["reason"] for row in lake_rows(tmp_path, spec)]
    assert reasons == ["sale", "restock", "adjustment", "sale"]


def test_missing_optional_column_reads_as_null_and_extra_columns_are_drift(specs, tmp_path):
    spec = specs["customers__customers"]
    make_customers_sqlite(tmp_path / "services" / "customers.sqlite")

    stats = extract_database(spec, DAY, tmp_path)

    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (2, 2, 0)
    assert stats.schema_drift == ["loyalty_tier"]
    rows = lake_rows(tmp_path, spec)
    assert [(r["customer_id"], r["email"], r["phone"]) for r in rows] == [
        ("c1", "ann@ex.com", None),
        ("c2", "bo@ex.com", None),
    ]


def test_sqlite_connection_refuses_writes(tmp_path):
    path = make_inventory_sqlite(tmp_path / "inventory.sqlite")
    before = path.read_bytes()
    with open_readonly(f"sqlite:///{path}") as connection, connection.cursor() as cursor:
        with pytest.raises(adbc_driver_manager.Error, match="readonly"):
            cursor.execute("INSERT INTO stock_levels VALUES ('p9', 1, '2026-03-02')")
        with pytest.raises(adbc_driver_manager.Error, match="readonly"):
            cursor.execute("CREATE TABLE intruder (x INTEGER)")
    assert path.read_bytes() == before


def test_missing_table_fails_and_keeps_the_old_partition(specs, tmp_path):
    spec = specs["inventory__stock_movements"]
    path = make_inventory_sqlite(tmp_path / "services" / "inventory.sqlite")
    extract_database(spec, DAY, tmp_path)
    written = partition_bytes(tmp_path, spec)
    with sqlite3.connect(path) as con:
        con.execute("ALTER TABLE stock_movements RENAME TO stock_movements_old")

    with pytest.raises(DatabaseSourceError) as raised:
        extract_database(spec, DAY, tmp_path)

    assert str(raised.value) == (
        'inventory/stock_movements: table "stock_movements" not found in the database at '
        f"$INVENTORY_DB_URL (not set; registry default sqlite:///{quote(str(tmp_path))}"
        "/services/inventory.sqlite)"
    )
    assert partition_bytes(tmp_path, spec) == written


def test_missing_required_column_is_named(specs, tmp_path, monkeypatch):
    path = tmp_path / "narrow.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE stock_levels (product_id TEXT, updated_at TEXT)")
    monkeypatch.setenv("INVENTORY_DB_URL", f"sqlite:///{path}")

    with pytest.raises(
        DatabaseSourceError, match=r"required column\(s\) on_hand missing"
    ) as raised:
        extract_database(specs["inventory__stock_levels"], DAY, tmp_path)

    assert "inventory/stock_levels" in str(raised.value)
    assert "$INVENTORY_DB_URL" in str(raised.value)
    assert not (tmp_path / "lake").exists()


def test_missing_sqlite_file_is_a_clear_error(specs, tmp_path, monkeypatch):
    monkeypatch.setenv("INVENTORY_DB_URL", f"sqlite:///{tmp_path}/absent.sqlite")
    with pytest.raises(DatabaseSourceError) as raised:
        extract_database(specs["inventory__stock_levels"], DAY, tmp_path)
    message = str(raised.value)
    assert message.startswith("inventory/stock_levels: cannot connect to the database at ")
    assert f"no database file at {tmp_path}/absent.sqlite" in message
    assert "\n" not in message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_is_retried_then_fails_without_the_password(specs, monkeypatch):
    url = f"postgresql://reader:hunter2@127.0.0.1:{_closed_port()}/inventory"
    monkeypatch.setenv("INVENTORY_DB_URL", url)
    retries = []
    stamina.instrumentation.set_on_retry_hooks([retries.append])
    try:
        with stamina.set_testing(True, attempts=3), pytest.raises(DatabaseSourceError) as raised:
            extract_database(specs["inventory__stock_levels"], DAY, Path("/nonexistent"))
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)

    message = str(raised.value)
    assert message.startswith(
        "inventory/stock_levels: cannot connect to the database at $INVENTORY_DB_URL "
        "(postgresql://reader:***@127.0.0.1:"
    )
    assert "Connection refused" in message and "\n" not in message
    assert len(retries) == 2
    assert "hunter2" not in message + "".join(repr(r.caused_by) + repr(r.args) for r in retries)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_unknown_scheme_names_the_source_and_hides_the_password(specs, monkeypatch):
    monkeypatch.setenv("INVENTORY_DB_URL", "mysql://reader:hunter2@db.internal/inventory")
    with pytest.raises(DatabaseSourceError) as raised:
        extract_database(specs["inventory__stock_levels"], DAY, Path("/nonexistent"))
    assert str(raised.value) == (
        "inventory/stock_levels: unsupported database URL in $INVENTORY_DB_URL "
        "(mysql://reader:***@db.internal/inventory); use sqlite:///<absolute path> or "
        "postgresql://user:password@host:port/database"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:s3cret@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=s3cret&sslmode=require", None),
        ("host=h user=u password=s3cret dbname=db", "host=h user=u password=*** dbname=db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("sqlite:////srv/data/inventory.sqlite", "sqlite:////srv/data/inventory.sqlite"),
    ],
)
def test_redact_url(url, shown):
    redacted = redact_url(url)
    assert "s3cret" not in redacted and "p%40ss" not in redacted
    if shown is not None:
        assert redacted == shown


def test_connection_url_prefers_the_environment(specs, tmp_path, monkeypatch):
    spec = specs["inventory__stock_levels"]
    assert connection_url(spec, tmp_path) == f"sqlite:///{tmp_path}/services/inventory.sqlite"
    monkeypatch.setenv("INVENTORY_DB_URL", "postgresql://reader@replica/inventory")
    assert connection_url(spec, tmp_path) == "postgresql://reader@replica/inventory"


# --- Dagster ------------------------------------------------------------------------------


def test_dagster_materialises_a_database_extract(specs, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    make_inventory_sqlite(data_dir / "services" / "inventory.sqlite")
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    asset = build_extract_asset(specs["inventory__stock_movements"], platform_days)

    result = dg.materialize([asset], partition_key=DAY.isoformat())

    assert result.success
    [materialization] = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["rows_loaded"].value == 4
    assert metadata["rows_quarantined"].value == 3
    assert metadata["schema_drift"].value == ["warehouse"]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == ROWS_ACCOUNTED_FOR and check.passed


# --- PostgreSQL ---------------------------------------------------------------------------


def _with_query(url: str, **settings: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(settings.items())
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@pytest.fixture(scope="module")
def postgres_server() -> str:
    """A reachable PostgreSQL URL: skipped when there is none, a failure when CI=true."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    candidates = (
        [configured]
        if configured
        else [f"postgresql://{user}@127.0.0.1:5432/test" for user in ("postgres", "root")]
    )
    errors = []
    for url in candidates:
        try:
            with adbc_driver_postgresql.dbapi.connect(url) as con, con.cursor() as cursor:
                cursor.execute("SELECT 1")
            return url
        except adbc_driver_manager.Error as error:
            errors.append(f"{redact_url(url)}: {str(error).strip().splitlines()[0]}")
    reason = "PostgreSQL is unreachable: " + "; ".join(errors)
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_server):
    """A URL whose search_path is a fresh schema holding inventory and customers tables.

    The schema is dropped afterwards. The extractor must keep the URL's own `options` while
    adding its read-only ones, which these tests rely on to find the tables.
    """
    schema = f"bp_test_{uuid.uuid4().hex[:12]}"
    url = _with_query(postgres_server, options=f"-c search_path={schema}")
    with adbc_driver_postgresql.dbapi.connect(postgres_server, autocommit=True) as con:
        with con.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
    with adbc_driver_postgresql.dbapi.connect(url, autocommit=True) as con:
        with con.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE stock_movements (movement_id text, product_id text, "
                "order_id text, quantity integer, reason text, occurred_at timestamp, "
                "updated_at timestamp, warehouse text DEFAULT 'w1')"
            )
            cursor.executemany(
                INSERT_MOVEMENT.format("$1, $2, $3, $4, $5, $6::timestamp, $7::timestamp"),
                MOVEMENTS,
            )
            # timestamptz: the window is a UTC day whatever the offset a row was written with.
            cursor.execute(
                "CREATE TABLE customers (customer_id text, email text, phone text, "
                "full_name text, country text, created_at timestamp, updated_at timestamptz)"
            )
            cursor.execute(
                "INSERT INTO customers VALUES "
                "('c1', 'ann@example.com', NULL, 'Ann Lee', 'DE', '2026-01-05 10:00', "
                "'2026-03-02 08:00+00'), "
                "('c2', 'bo@example.com', '+33 1', 'Bo Chan', 'FR', '2026-02-01 10:00', "
                "'2026-03-03 00:30+02'), "
                "('c3', 'cy@example.com', NULL, 'Cy Diaz', 'ES', '2026-02-01 10:00', "
                "'2026-03-03 00:30+00')"
            )
    try:
        yield url
    finally:
        with adbc_driver_postgresql.dbapi.connect(postgres_server, autocommit=True) as con:
            with con.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_day_is_checked_loaded_and_idempotent(specs, postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("INVENTORY_DB_URL", postgres_url)
    spec = specs["inventory__stock_movements"]

    stats = extract_database(spec, DAY, tmp_path)

    assert (stats.rows_read, stats.rows_loaded, stats.rows_duplicate) == (7, 4, 1)
    assert stats.rows_quarantined == 2
    assert stats.schema_drift == ["warehouse"]
    assert stats.watermark == "2026-03-02T23:59:59.999999"
    assert movement_tuples(lake_rows(tmp_path, spec)) == EXPECTED_MOVEMENTS
    assert quarantine_tuples(lake_rows(tmp_path, spec, "quarantine")) == EXPECTED_QUARANTINE

    first = partition_bytes(tmp_path, spec)
    assert extract_database(spec, DAY, tmp_path) == stats
    assert partition_bytes(tmp_path, spec) == first


@pytest.mark.postgres
def test_postgres_timestamptz_watermark_uses_utc_days(specs, postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTOMERS_DB_URL", postgres_url)
    spec = specs["customers__customers"]

    stats = extract_database(spec, DAY, tmp_path)

    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (2, 2, 0)
    rows = lake_rows(tmp_path, spec)
    assert [(r["customer_id"], r["phone"], r["updated_at"]) for r in rows] == [
        ("c1", None, datetime(2026, 3, 2, 8)),
        ("c2", "+33 1", datetime(2026, 3, 2, 22, 30)),
    ]


@pytest.mark.postgres
def test_postgres_connection_refuses_writes(postgres_url):
    with open_readonly(postgres_url) as connection, connection.cursor() as cursor:
        with pytest.raises(adbc_driver_manager.Error, match="read-only transaction"):
            cursor.execute(INSERT_MOVEMENT.format("'x', 'p', NULL, 1, 'sale', now(), now()"))
        connection.rollback()
        with pytest.raises(adbc_driver_manager.Error, match="read-only transaction"):
            cursor.execute("CREATE TABLE intruder (x integer)")
        connection.rollback()
        # Every new transaction of the session starts read-only too.
        cursor.execute("SELECT current_setting('transaction_read_only')")
        assert cursor.fetchall() == [("on",)]
    with adbc_driver_postgresql.dbapi.connect(postgres_url) as con, con.cursor() as cursor:
        cursor.execute("SELECT count(*), to_regclass('intruder') FROM stock_movements")
        assert cursor.fetchall() == [(len(MOVEMENTS), None)]


@pytest.mark.postgres
def test_postgres_missing_table_is_named(specs, postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("INVENTORY_DB_URL", postgres_url)
    with pytest.raises(DatabaseSourceError) as raised:
        extract_database(specs["inventory__stock_levels"], DAY, tmp_path)
    assert str(raised.value).startswith(
        'inventory/stock_levels: table "stock_levels" not found in the database at '
        "$INVENTORY_DB_URL (postgresql://"
    )
    assert not (tmp_path / "lake").exists()
