"""Mart arithmetic on inputs chosen to expose it: the real model SQL, run by dbt on DuckDB.

The demo landscape cannot be steered to produce a given figure, so these tests write the
tables a mart reads into a fresh warehouse and let `dbt run` build that one mart over them.
"""

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from support import run_dbt

pytestmark = pytest.mark.slow

DAY = date(2026, 3, 10)


def run_model(data: Path, model: str, first: date, end: date) -> None:
    """`dbt run` of one model for the window [first, end), against `data`'s warehouse."""
    window = f'{{"min_date": "{first}", "max_date": "{end}"}}'
    run_dbt(data, "run", "--select", model, "--vars", window)


def test_days_of_stock_left_is_an_exact_decimal_rounded_half_up(tmp_path):
    """61 units in stock, 20 sold in the trailing 7 days: 61 * 7 / 20 = 21.35 days, which a
    floating-point quotient (21.3499…) rounds to 21.3. 3 in stock, 140 sold: exactly 0.15."""
    lines = [
        # order, day offset, channel, product, quantity, placement known
        ("o1", 0, "mobile", "prd-0001", 5, True),
        ("o2", -3, "web", "prd-0001", 15, True),  # other channel, same velocity
        ("o3", -7, "web", "prd-0001", 50, True),  # outside the trailing 7 days
        ("o4", 0, "mobile", "prd-0002", 140, True),
        ("o5", 0, "web", "prd-0003", 7, True),  # never moved in the inventory: stock unknown
        ("o6", 0, "web", "prd-0004", 9, False),  # order_placed still in flight: not counted yet
    ]
    stock = [("prd-0001", -1, 61), ("prd-0001", -4, 999), ("prd-0002", 0, 3)]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA middle_platform; CREATE SCHEMA staging")
        con.execute(
            "CREATE TABLE middle_platform.fct_order_items (order_id VARCHAR, line_number BIGINT, "
            "order_date DATE, channel VARCHAR, product_id VARCHAR, quantity INTEGER, "
            "unit_price DECIMAL(12,2), line_amount DECIMAL(14,2), placement_known BOOLEAN)"
        )
        con.executemany(
            "INSERT INTO middle_platform.fct_order_items VALUES (?, 1, ?, ?, ?, ?, 1.00, ?, ?)",
            [
                (order, DAY + timedelta(days=offset), channel, product, quantity, quantity, known)
                for order, offset, channel, product, quantity, known in lines
            ],
        )
        con.execute(
            "CREATE TABLE middle_platform.fct_inventory_daily (product_id VARCHAR, "
            "movement_date DATE, units_sold HUGEINT, units_restocked HUGEINT, "
            "units_adjusted HUGEINT, net_change HUGEINT, closing_on_hand HUGEINT)"
        )
        con.executemany(
            "INSERT INTO middle_platform.fct_inventory_daily VALUES (?, ?, 0, 0, 0, 0, ?)",
            [(product, DAY + timedelta(days=days), on_hand) for product, days, on_hand in stock],
        )
        con.execute(
            "CREATE TABLE staging.stg_catalog__products AS SELECT * FROM (VALUES "
            "('prd-0001', 'A-1', 'Lamp', 'home', 1.00, TIMESTAMP '2026-03-01'), "
            "('prd-0002', 'A-2', 'Kite', 'toys', 1.00, TIMESTAMP '2026-03-01'), "
            "('prd-0003', 'A-3', 'Atlas', 'books', 1.00, TIMESTAMP '2026-03-01')) "
            "AS t(product_id, sku, product_name, category, unit_price, updated_at)"
        )

    run_model(tmp_path, "hot_selling_products_daily", DAY, DAY + timedelta(days=1))

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT channel, product_id, units_sold, closing_on_hand, units_per_day, "
            "days_of_stock_left, typeof(units_per_day), typeof(days_of_stock_left) "
            "FROM scenario.hot_selling_products_daily WHERE order_date = ?",
            [DAY],
        ).fetchall()
    found = {(channel, product): rest for channel, product, *rest in rows}
    decimals = ("DECIMAL(12,2)", "DECIMAL(10,1)")
    assert found == {
        ("mobile", "prd-0001"): [5, 61, Decimal("2.86"), Decimal("21.4"), *decimals],
        ("mobile", "prd-0002"): [140, 3, Decimal("20.00"), Decimal("0.2"), *decimals],
        ("web", "prd-0003"): [7, None, Decimal("1.00"), None, *decimals],
    }


def test_a_payment_filed_again_on_an_earlier_day_leaves_the_later_one(tmp_path):
    """Days built out of order, as a hand-launched range may be: day D alone while the
    payment's first event (on D-1) has not landed, then D-1 once it has. The payment moves to
    D-1 and is no longer on D: one row per payment, as `fct_orders` keeps one per order."""
    events = [
        # event, type, day offset, payment
        ("e1", "payment_authorized", -1, "pay-1"),
        ("e2", "payment_captured", 0, "pay-1"),
        ("e3", "payment_authorized", 0, "pay-2"),
    ]
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA staging")
        con.execute(
            "CREATE TABLE staging.stg_payments__payment_events (event_id VARCHAR, "
            "event_type VARCHAR, occurred_at TIMESTAMP, event_date DATE, payment_id VARCHAR, "
            "order_id VARCHAR, amount DECIMAL(12,2), currency VARCHAR, method VARCHAR)"
        )

    def land(offset: int) -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.executemany(
                "INSERT INTO staging.stg_payments__payment_events "
                "VALUES (?, ?, ?, ?, ?, 'ord-' || ?, 10.00, 'EUR', 'card')",
                [
                    (event, kind, DAY + timedelta(days=days, hours=12), DAY + timedelta(days=days))
                    + (payment, payment)
                    for event, kind, days, payment in events
                    if days == offset
                ],
            )

    land(0)
    run_model(tmp_path, "fct_payments", DAY, DAY + timedelta(days=1))
    land(-1)
    run_model(tmp_path, "fct_payments", DAY - timedelta(days=1), DAY)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT payment_id, payment_date, status FROM middle_platform.fct_payments "
            "ORDER BY payment_id, payment_date"
        ).fetchall()
    assert rows == [
        ("pay-1", DAY - timedelta(days=1), "captured"),
        ("pay-2", DAY, "pending"),
    ]
