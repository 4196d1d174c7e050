"""A plain `dbt build` from dbt_project/, without Dagster: on an empty lake and on one partition."""

from datetime import date
from pathlib import Path

import duckdb
import pytest
from support import run_dbt

from batch_platform.dbt_project import load_manifest

pytestmark = pytest.mark.slow

DAY = date(2026, 3, 1)


def dbt_build(data: Path, *args: str) -> None:
    run_dbt(data, "build", *args)


def model_tables() -> set[tuple[str, str]]:
    """(schema, table) of every model of the project."""
    return {
        (node["schema"], node["alias"])
        for node in load_manifest()["nodes"].values()
        if node["resource_type"] == "model"
    }


def row_counts(data: Path) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        return {
            (schema, table): con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}"'  # noqa: S608 (catalog names)
            ).fetchone()[0]
            for schema, table in tables
        }


def test_dbt_build_on_an_empty_lake_builds_every_model_empty(tmp_path):
    dbt_build(tmp_path)

    counts = row_counts(tmp_path)
    expected = model_tables()
    assert {"staging", "middle_platform", "channel"} <= {schema for schema, _ in expected}
    assert expected <= counts.keys(), f"not built: {sorted(expected - counts.keys())}"
    assert {table: counts[table] for table in expected if counts[table]} == {}


def test_dbt_build_reads_the_partitions_there_are_and_builds_the_rest_empty(tmp_path):
    """Staging only: with orders but no payments the reconciliation tests rightly fail."""
    from batch_platform.extract.factory import EXTRACTORS
    from batch_platform.registry import load_registry
    from batch_platform.simulator import simulate

    data = tmp_path / "data"
    simulate(data, start=DAY, days=1, seed=3, scale=0.02)
    spec = next(s for s in load_registry(load_manifest()) if s.name == "orders__order_events")
    EXTRACTORS[spec.access](spec, DAY, data)
    parquet = data / "lake" / "raw" / "orders" / "order_events" / f"dt={DAY}" / "data.parquet"
    assert parquet.is_file()

    window = '{min_date: "2026-03-01", max_date: "2026-03-02"}'
    dbt_build(data, "--select", "staging", "--vars", window)

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        in_file = con.execute(
            "SELECT event_id, event_type, occurred_at, dt, order_id, customer_id, channel,"
            " total_amount, discount_amount, items FROM read_parquet(?, hive_partitioning = true)"
            " ORDER BY event_id",
            [str(parquet)],
        ).fetchall()
        built = con.execute(
            "SELECT event_id, event_type, occurred_at, event_date, order_id, customer_id, channel,"
            " total_amount, discount_amount, items FROM staging.stg_orders__order_events"
            " ORDER BY event_id"
        ).fetchall()
    assert in_file and built == in_file

    counts = row_counts(data)
    still_empty = {
        table: counts[table]
        for table in model_tables()
        if table[0] == "staging"
        and table[1] not in {"stg_orders__order_events", "stg_platform__quarantine"}
    }
    assert still_empty and set(still_empty.values()) == {0}, still_empty
