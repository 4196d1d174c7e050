"""The new-data sensor's polling of the real demo databases and APIs, and the bootstrap."""

import json
import logging

import dagster as dg
import pytest
from support import demo_apis, postgres_url, requested_pairs

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.definitions import defs
from batch_platform.extract.database import changed_days
from batch_platform.registry import load_registry
from batch_platform.sensors import build_new_data_sensor, watermark_changes
from batch_platform.simulator import simulate

POLLED = [
    "catalog/products",
    "customers/customers",
    "inventory/stock_levels",
    "inventory/stock_movements",
    "promotions/campaigns",
]


def polled_sources():
    return [s for s in load_registry(load_manifest()) if s.access in ("database", "api")]


def poll(cursor=None):
    """What the sensor's watermark half finds: (source, day) pairs with new rows, and cursor."""
    keys = set(platform_days.get_partition_keys())
    touched, cursor = watermark_changes(polled_sources(), cursor or {}, keys, logging.getLogger())
    pairs = sorted((path, day) for day, sources in touched.items() for path in sources)
    return pairs, cursor


def expected_days(ground_truth, days=None):
    return sorted(
        (source, day)
        for source in POLLED
        for day, figures in ground_truth["sources"][source]["partitions"].items()
        if figures["rows"] and (days is None or day in days)
    )


def test_first_poll_finds_every_day_with_rows_then_nothing(data_dir):
    truth = json.loads((data_dir / "landscape.json").read_text())
    with demo_apis(data_dir):
        pairs, cursor = poll()
        assert pairs == expected_days(truth)
        assert set(cursor) == set(POLLED)
        # A restarted daemon only has the cursor: it asks again and gets nothing new.
        assert poll(cursor)[0] == []

        simulate(data_dir, None, 1, append=True)
        after = json.loads((data_dir / "landscape.json").read_text())
        pairs, _ = poll(cursor)
    new_day = sorted(after["channels"])[-1]
    assert pairs == expected_days(after, {new_day})


def test_a_fresh_instance_extracts_all_history_in_one_run_then_nothing(data_dir):
    """The bootstrap: the first tick sees every day of every source and asks for ONE run."""
    truth = json.loads((data_dir / "landscape.json").read_text())
    sensor = build_new_data_sensor(load_registry(load_manifest()), platform_days)
    with demo_apis(data_dir), dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            result = sensor.evaluate_tick(context)
        with dg.build_sensor_context(
            instance=instance, definitions=defs, cursor=result.cursor
        ) as context:
            again = sensor.evaluate_tick(context)
    assert len(result.run_requests) == 1
    days = sorted(truth["channels"])
    sources = sorted(truth["sources"])
    assert requested_pairs(result.run_requests) == [
        (f"raw/{source}", day) for source in sources for day in days
    ]
    assert again.run_requests == []


def test_an_unreachable_source_is_skipped_and_asked_again(data_dir, monkeypatch):
    monkeypatch.setenv("CUSTOMERS_DB_URL", "sqlite:///" + str(data_dir / "nope.sqlite"))
    with demo_apis(data_dir):
        pairs, cursor = poll()
    assert "customers/customers" not in {source for source, _ in pairs}
    assert "customers/customers" not in cursor


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
