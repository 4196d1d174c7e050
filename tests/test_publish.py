"""The analyst snapshot over the real pipeline: contents, comments, PII guard, atomic swap.

The warehouse is the shared `pipeline` fixture's (conftest.py: the whole graph built once over
the demo landscape). It is read-only, so every test here publishes from its own copy.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from batch_platform.analytics import snapshot_path
from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import analytics_snapshot, defs
from batch_platform.paths import DATA_DIR_ENV
from batch_platform.publish import (
    ANALYST_LAYERS,
    STORAGE_VERSION,
    SnapshotTable,
    analyst_tables,
    publish_snapshot,
    raw_pii_columns,
)
from batch_platform.transform.dbt_assets import WAREHOUSE_POOL, translator

KPIS = "channel.channel_daily_kpis"


@pytest.fixture
def private_data(pipeline, tmp_path, monkeypatch) -> Path:
    """A private data folder holding a copy of the pipeline's warehouse, set as the data dir."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy2(pipeline / "warehouse.duckdb", folder / "warehouse.duckdb")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


def _tables(path: Path) -> dict[str, int]:
    """`schema.table` -> rows for every table of the analyst layers in a DuckDB file."""
    with duckdb.connect(str(path), read_only=True) as connection:
        names = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ? "
            "ORDER BY ALL",
            [list(ANALYST_LAYERS)],
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(
                f'SELECT count(*) FROM "{schema}"."{name}"'  # noqa: S608 (catalog names)
            ).fetchone()[0]
            for schema, name in names
        }


def _tmp_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".tmp.wal")))


def test_asset_reads_every_analyst_model_and_shares_the_warehouse_pool():
    manifest = load_manifest()
    expected = {
        translator.get_asset_key(node)
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] in ANALYST_LAYERS
    }
    spec = next(iter(analytics_snapshot.specs))
    assert set(analytics_snapshot.dependency_keys) == expected
    assert len(expected) >= 12
    assert not any(key.path[0] == "staging" for key in expected)
    assert spec.group_name == "analytics"
    assert spec.owners == ["team:data-platform"]
    assert spec.kinds == {"duckdb"}
    assert analytics_snapshot.partitions_def is None
    assert analytics_snapshot.op.pool == WAREHOUSE_POOL
    assert "separate file" in spec.description
    assert defs.resolve_assets_def("analytics_snapshot") is not None


def test_snapshot_holds_exactly_the_analyst_tables_with_their_comments(private_data):
    result = dg.materialize([analytics_snapshot])
    snapshot = snapshot_path()
    assert snapshot == private_data / "analytics.duckdb"

    warehouse_tables = _tables(private_data / "warehouse.duckdb")
    assert _tables(snapshot) == warehouse_tables
    assert sum(warehouse_tables.values()) > 0
    manifest = load_manifest()
    expected = {table.qualified_name: table for table in analyst_tables(manifest)}
    assert set(warehouse_tables) == set(expected)

    with duckdb.connect(str(snapshot), read_only=True) as connection:
        schemas = {
            row[0]
            for row in connection.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal"
            ).fetchall()
        }
        assert schemas == set(ANALYST_LAYERS)  # no staging, nothing else
        assert not connection.execute("SELECT * FROM duckdb_views() WHERE NOT internal").fetchall()
        comments = dict(
            connection.execute(
                "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables()"
            ).fetchall()
        )
        assert set(comments) == set(expected)
        column_comments = {
            (f"{schema}.{table}", column): comment
            for schema, table, column, comment in connection.execute(
                "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
                "WHERE comment IS NOT NULL"
            ).fetchall()
        }
        (tags,) = connection.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()
    for name, table in expected.items():
        assert table.description and comments[name] == table.description
        for column, text in table.column_descriptions.items():
            assert column_comments[(name, column)] == text
    assert column_comments[(KPIS, "gmv")].startswith("Gross merchandise value")
    # Old enough for the DuckDB CLI 1.5 (the pipeline's own DuckDB writes a newer format).
    assert tags["storage_version"].startswith(STORAGE_VERSION)

    metadata = result.asset_materializations_for_node("analytics_snapshot")[0].metadata
    assert metadata["tables"].value == len(expected)
    assert metadata["total_rows"].value == sum(warehouse_tables.values())
    assert metadata["dagster/row_count"].value == sum(warehouse_tables.values())
    assert metadata["file_bytes"].value == snapshot.stat().st_size
    preview = metadata["preview"].value
    assert preview.splitlines()[0].startswith("| activity_date | channel | sessions |")
    assert len(preview.splitlines()) == 2 + min(10, warehouse_tables[KPIS])
    assert _tmp_leftovers(private_data) == []


def test_the_duckdb_cli_opens_the_snapshot(private_data):
    dg.materialize([analytics_snapshot])
    cli = Path(sys.executable).parent / "duckdb"
    count = f"SELECT count(*) FROM {KPIS}"  # noqa: S608 (constant)
    done = subprocess.run(
        [str(cli), "-readonly", "-csv", str(snapshot_path()), "-c", count],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == _tables(private_data / "warehouse.duckdb")[KPIS]


def test_pii_guard_fails_the_publish_and_keeps_the_old_snapshot(private_data):
    assert dg.materialize([analytics_snapshot]).success
    snapshot = snapshot_path()
    before = snapshot.read_bytes()
    with duckdb.connect(str(private_data / "warehouse.duckdb")) as connection:
        connection.execute(
            "ALTER TABLE middle_platform.dim_customers ADD COLUMN email VARCHAR "
            "DEFAULT 'someone@example.com'"
        )

    result = dg.materialize([analytics_snapshot], raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "PII guard" in message and "middle_platform.dim_customers.email" in message
    assert snapshot.read_bytes() == before
    assert _tmp_leftovers(private_data) == []


def _simulator_pii(data: Path) -> set[str]:
    """Every PII value the simulator produced: today's customer rows and every older version.

    Older versions (before an email or phone change) survive only in the raw lake's customer
    partitions, so both places are read; the quarantine's raw text is read too.
    """
    import sqlite3

    with sqlite3.connect(data / "services" / "customers.sqlite") as source:
        rows = source.execute("SELECT email, phone, full_name FROM customers").fetchall()
    values = {v for row in rows for v in row}
    lake = data / "lake" / "raw" / "customers" / "customers"
    with duckdb.connect() as con:
        values |= {
            v
            for row in con.execute(
                "SELECT email, phone, full_name FROM read_parquet(?)",
                [str(lake / "*" / "*.parquet")],
            ).fetchall()
            for v in row
        }
    return {v.lower() for v in values if v}


def test_no_simulator_pii_value_is_in_any_text_column_of_the_snapshot(private_data, pipeline):
    dg.materialize([analytics_snapshot])
    pii = _simulator_pii(pipeline)
    assert len(pii) > 100 and any("@" in v for v in pii)

    with duckdb.connect(str(snapshot_path()), read_only=True) as con:
        con.execute("CREATE TEMP TABLE pii AS SELECT unnest(?::VARCHAR[]) AS value", [list(pii)])
        columns = con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE data_type = 'VARCHAR' AND database_name = current_database() "
            "AND NOT internal"
        ).fetchall()
        assert len(columns) >= 20  # every analyst table has text columns: ids, channels, names
        scanned = 0
        for schema, table, column in columns:
            # A PII value anywhere in the text, not only as the whole value.
            (rows, leaked) = con.execute(
                f"SELECT count(*), list(DISTINCT p.value) FILTER (p.value IS NOT NULL) "  # noqa: S608
                f'FROM "{schema}"."{table}" t LEFT JOIN pii p '
                f'ON contains(lower(t."{column}"), p.value)'
            ).fetchone()
            scanned += rows
            assert not leaked, f"{schema}.{table}.{column} holds PII: {sorted(leaked)[:3]}"
    assert scanned > 0


def test_pii_names_are_caught_and_masked_columns_pass():
    columns = [
        ("s", "t", name)
        for name in (
            "email",
            "customer_email",
            "Email_Address",
            "phone",
            "phone_number",
            "full_name",
            "first_name",
            "last_name",
            "name",
            "email_hash",
            "phone_hash",
            "full_name_hash",
            "product_name",
            "campaign_name",
            "channel",
            "postal_address",
        )
    ]
    assert raw_pii_columns(columns, declared=["postal_address"]) == [
        "s.t.email",
        "s.t.customer_email",
        "s.t.Email_Address",
        "s.t.phone",
        "s.t.phone_number",
        "s.t.full_name",
        "s.t.first_name",
        "s.t.last_name",
        "s.t.name",
        "s.t.postal_address",
    ]


def test_descriptions_are_quoted_not_spliced_into_sql(private_data):
    hostile = 'it\'s "quoted"; DROP TABLE x; -- and\na second line \\ with a backslash'
    table = SnapshotTable(
        schema="channel",
        name="channel_daily_kpis",
        asset_key=dg.AssetKey(["channel", "channel_daily_kpis"]),
        description=hostile,
        column_descriptions={"gmv": "O'Brien's GMV'); DROP SCHEMA channel CASCADE; --"},
    )
    target = private_data / "analytics.duckdb"
    stats = publish_snapshot(private_data / "warehouse.duckdb", target, [table])
    assert stats.row_counts == {KPIS: _tables(private_data / "warehouse.duckdb")[KPIS]}
    with duckdb.connect(str(target), read_only=True) as connection:
        assert connection.execute("SELECT comment FROM duckdb_tables()").fetchall() == [(hostile,)]
        assert connection.execute(
            "SELECT comment FROM duckdb_columns() WHERE column_name = 'gmv'"
        ).fetchall() == [("O'Brien's GMV'); DROP SCHEMA channel CASCADE; --",)]


READER = r"""
import json, sys, time
import duckdb

path, mode, seconds, result = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
query = "SELECT count(*) FROM channel.channel_daily_kpis"
# `held`: one connection opened before any republish and kept, which must go on answering from
# the file it opened. `fresh`: a new connection per query. They run in separate processes
# because DuckDB reuses an open database instance for every connect() to the same path.
held = duckdb.connect(path, read_only=True) if mode == "held" else None
answers, errors = [], []
print("ready", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        if held is None:
            with duckdb.connect(path, read_only=True) as connection:
                answers.append(connection.execute(query).fetchone()[0])
        else:
            answers.append(held.execute(query).fetchone()[0])
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
# To a file, not stdout: tens of thousands of answers would fill the pipe and block the exit.
with open(result, "w") as output:
    json.dump({"answers": answers, "errors": errors}, output)
"""

WRITER = r"""
import sys
import duckdb

connection = duckdb.connect(sys.argv[1])
connection.execute("BEGIN")
connection.execute("CREATE TABLE main.pipeline_is_writing AS SELECT 1 AS x")
print("ready", flush=True)
sys.stdin.read()
"""


def _variant(warehouse: Path, folder: Path, channels_dropped: list[str]) -> tuple[Path, int]:
    """A copy of the warehouse with some channels' KPI rows deleted; its KPI row count."""
    folder.mkdir()
    copy = folder / "warehouse.duckdb"
    shutil.copy2(warehouse, copy)
    delete = f"DELETE FROM {KPIS} WHERE list_contains(?, channel)"  # noqa: S608 (constant)
    count = f"SELECT count(*) FROM {KPIS}"  # noqa: S608 (constant)
    with duckdb.connect(str(copy)) as connection:
        connection.execute(delete, [channels_dropped])
        (rows,) = connection.execute(count).fetchone()
    return copy, rows


def test_readers_in_another_process_see_a_whole_snapshot_and_never_a_lock(private_data, tmp_path):
    warehouse = private_data / "warehouse.duckdb"
    tables = analyst_tables(load_manifest())
    variants = [
        _variant(warehouse, tmp_path / f"v{i}", dropped)
        for i, dropped in enumerate([[], ["web"], ["web", "mobile"]])
    ]
    counts = {rows for _, rows in variants}
    assert len(counts) == 3
    target = snapshot_path()
    publish_snapshot(variants[0][0], target, tables)

    # The pipeline holds its warehouse for writing the whole time; readers must not care.
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, str(target), mode, "6", str(tmp_path / f"{mode}.json")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("fresh", "held")
    }
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(warehouse), read_only=True)
        for reader in readers.values():
            assert reader.stdout.readline().strip() == "ready"
        publishes = 0
        while any(reader.poll() is None for reader in readers.values()):
            copy, _ = variants[(publishes + 1) % len(variants)]
            publish_snapshot(copy, target, tables)
            publishes += 1
            time.sleep(0.05)
        assert all(reader.returncode == 0 for reader in readers.values())
        outcome = {mode: json.loads((tmp_path / f"{mode}.json").read_text()) for mode in readers}
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
        for reader in readers.values():
            reader.kill()
            reader.wait(timeout=30)

    fresh, held = outcome["fresh"], outcome["held"]
    assert fresh["errors"] == [] and held["errors"] == []
    assert publishes >= 3
    assert len(fresh["answers"]) >= 20 and len(held["answers"]) >= 20
    assert set(fresh["answers"]) <= counts
    assert len(set(fresh["answers"])) >= 2  # the reader really read across swaps
    assert set(held["answers"]) == {variants[0][1]}
    assert _tmp_leftovers(target.parent) == []
    assert not os.path.exists(f"{target}.wal")
