"""The whole graph over the demo landscape, against the simulator's ground truth."""

from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from support import expected_counts, landscape_days, warehouse

pytestmark = pytest.mark.slow


def test_orders_and_gmv_per_channel_and_day_are_exact(pipeline, ground_truth):
    with warehouse(pipeline) as con:
        rows = con.execute(
            "SELECT activity_date, channel, orders, gmv, discount, sessions "
            "FROM channel.channel_daily_kpis"
        ).fetchall()
    found = {(str(d), c): (o, g, disc, s) for d, c, o, g, disc, s in rows}
    expected = {
        (day, channel): (v["orders"], Decimal(v["gmv"]), Decimal(v["discount"]), v["sessions"])
        for day, channels in ground_truth["channels"].items()
        for channel, v in channels.items()
        if v["orders"] or v["sessions"]
    }
    assert found == expected


def test_every_source_and_day_loads_and_quarantines_exactly_the_ground_truth(
    pipeline, ground_truth
):
    lake = pipeline / "lake"
    for source, truth in ground_truth["sources"].items():
        for day in truth["partitions"]:
            raw = lake / "raw" / source / f"dt={day}" / "data.parquet"
            quarantine = lake / "quarantine" / source / f"dt={day}" / "data.parquet"
            loaded = pq.read_metadata(raw).num_rows
            rejected = pq.read_metadata(quarantine).num_rows
            assert (loaded, rejected) == expected_counts(truth, day), f"{source} {day}"


def test_every_reconciliation_break_is_found_with_its_type_and_none_is_false(
    pipeline, ground_truth
):
    with warehouse(pipeline) as con:
        rows = con.execute(
            "SELECT break_type, coalesce(movement_id, order_id) "
            "FROM consistency.reconciliation_breaks"
        ).fetchall()
    found = {(kind, key) for kind, key in rows}
    truth = {(kind, key) for kind, keys in ground_truth["business_faults"].items() for key in keys}
    healing = {
        (kind, key)
        for kind, keys in ground_truth["business_faults_in_flight"].items()
        for key in keys
    }
    injected = truth - healing
    assert injected, "the landscape should contain injected breaks"
    assert injected <= found, f"missed: {sorted(injected - found)}"
    assert found <= truth, f"false breaks: {sorted(found - truth)}"
    assert len(rows) == len(found), "a break was reported twice"


def test_no_simulator_pii_value_reaches_any_warehouse_table(pipeline):
    import sqlite3

    with sqlite3.connect(pipeline / "services" / "customers.sqlite") as source:
        values = {
            value.lower()
            for row in source.execute("SELECT email, phone, full_name FROM customers")
            for value in row
            if value
        }
    assert len(values) > 100
    with warehouse(pipeline) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema <> 'main' "
            "AND table_name <> 'stg_platform__quarantine'"
        ).fetchall()
        assert len(columns) > 30
        for schema, table, column in columns:
            seen = con.execute(
                f'SELECT DISTINCT lower("{column}") FROM "{schema}"."{table}" '  # noqa: S608
                f'WHERE "{column}" IS NOT NULL'
            ).fetchall()
            leaked = values & {v for (v,) in seen}
            assert not leaked, f"{schema}.{table}.{column} holds PII: {sorted(leaked)[:3]}"


def test_the_whole_graph_is_materialised_for_every_day(pipeline):
    with warehouse(pipeline) as con:
        days = {
            str(d)
            for (d,) in con.execute(
                "SELECT DISTINCT summary_date FROM consistency.reconciliation_daily_summary"
            ).fetchall()
        }
        products = con.execute("SELECT count(*) FROM middle_platform.dim_products").fetchone()[0]
        hot = con.execute("SELECT count(*) FROM scenario.hot_selling_products_daily").fetchone()[0]
    assert days == set(landscape_days())
    assert products == 200
    assert hot > 0
