"""The watermark sensor over the real demo databases and the real demo APIs."""

import json

import dagster as dg
import pytest
from support import demo_apis, postgres_url

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import defs
from batch_platform.extract.database import changed_days
from batch_platform.registry import load_registry
from batch_platform.sensors import build_watermark_sensor
from batch_platform.simulator import simulate

POLLED = [
    "catalog/products",
    "customers/customers",
    "inventory/stock_levels",
    "inventory/stock_movements",
    "promotions/campaigns",
]


def evaluate(sensor, cursor=None):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
        result = sensor.evaluate_tick(context)
    days = [r.partition_key for r in result.run_requests]
    assert len(days) == len(set(days)), "one run per day, extracting every source it touches"
    requests = sorted(
        (key.to_user_string().removeprefix("raw/"), r.partition_key)
        for r in result.run_requests
        for key in r.asset_selection
    )
    return requests, result.cursor


def expected_days(ground_truth, days=None):
    return sorted(
        (source, day)
        for source in POLLED
        for day, figures in ground_truth["sources"][source]["partitions"].items()
        if figures["rows"] and (days is None or day in days)
    )


def test_first_tick_requests_every_day_with_rows_then_nothing(data_dir):
    sensor = build_watermark_sensor(load_registry(load_manifest()))
    truth = json.loads((data_dir / "landscape.json").read_text())
    with demo_apis(data_dir):
        requests, cursor = evaluate(sensor)
        assert requests == expected_days(truth)
        assert set(json.loads(cursor)) == set(POLLED)
        # A restarted daemon only has the cursor: it asks again and gets nothing new.
        assert evaluate(sensor, cursor)[0] == []

        simulate(data_dir, None, 1, append=True)
        after = json.loads((data_dir / "landscape.json").read_text())
        requests, _ = evaluate(sensor, cursor)
    new_day = sorted(after["channels"])[-1]
    assert requests == expected_days(after, {new_day})


def test_an_unreachable_source_is_skipped_and_asked_again(data_dir, monkeypatch):
    sensor = build_watermark_sensor(load_registry(load_manifest()))
    monkeypatch.setenv("CUSTOMERS_DB_URL", "sqlite:///" + str(data_dir / "nope.sqlite"))
    with demo_apis(data_dir):
        requests, cursor = evaluate(sensor)
    assert "customers/customers" not in {source for source, _ in requests}
    assert "customers/customers" not in json.loads(cursor)


@pytest.mark.postgres
def test_postgres_changed_days_compare_as_timestamps(data_dir, monkeypatch):
    import adbc_driver_postgresql.dbapi as pg

    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    spec = next(s for s in load_registry(load_manifest()) if s.path == "inventory/stock_levels")
    with pg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA IF EXISTS watermark_probe CASCADE")
        cursor.execute("CREATE SCHEMA watermark_probe")
        cursor.execute(
            "CREATE TABLE watermark_probe.stock_levels "
            "(product_id text, on_hand integer, updated_at timestamp)"
        )
        cursor.execute(
            "INSERT INTO watermark_probe.stock_levels VALUES "
            "('p1', 1, '2026-03-01 10:00:00.5'), ('p2', 2, '2026-03-01 23:59:59'), "
            "('p3', 3, '2026-03-02 00:00:00')"
        )
        connection.commit()
    try:
        monkeypatch.setenv("INVENTORY_DB_URL", f"{url}?options=-csearch_path%3Dwatermark_probe")
        assert changed_days(spec, data_dir, None) == {
            "2026-03-01": "2026-03-01 23:59:59.000000",
            "2026-03-02": "2026-03-02 00:00:00.000000",
        }
        assert changed_days(spec, data_dir, "2026-03-01 23:59:59.000000") == {
            "2026-03-02": "2026-03-02 00:00:00.000000"
        }
    finally:
        with pg.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA watermark_probe CASCADE")
            connection.commit()
