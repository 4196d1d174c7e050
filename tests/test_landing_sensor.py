"""The new-data sensor over real landing files: exact run requests, cursor, restart, late files.

The sensor is built over the event sources only: here no database or API exists to poll.
"""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.definitions import defs
from batch_platform.extract.factory import extract_asset_key
from batch_platform.registry import load_registry
from batch_platform.sensors import (
    NEWS_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_new_data_sensor,
)


@pytest.fixture
def landing(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BATCH_PLATFORM_DATA_DIR", str(tmp_path))
    root = tmp_path / "landing"
    root.mkdir()
    return root


def event_sources():
    return [spec for spec in load_registry(load_manifest()) if spec.access == "events"]


@pytest.fixture
def sensor() -> dg.SensorDefinition:
    return build_new_data_sensor(event_sources(), platform_days)


def deliver(root: Path, relative: str, text: str = '{"event_id": "x"}\n') -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def evaluate(sensor, cursor=None):
    """(sources with new files, first day, last day) of each requested run, and the cursor.

    Every run extracts every source for its days (a source with nothing there gets an empty
    partition, not a gap); which ones had news is in its tags.
    """
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs) as context:
            result = sensor.evaluate_tick(context)
    every_source = {extract_asset_key(spec) for spec in event_sources()}
    runs = []
    for request in result.run_requests:
        assert set(request.asset_selection) == every_source
        tags = request.tags
        runs.append((tags[NEWS_TAG], tags[RANGE_START_TAG], tags[RANGE_END_TAG]))
    return sorted(runs), result.cursor


def test_new_files_request_their_sources_and_days_in_one_run(landing, sensor):
    """Consecutive days with new files are one run, extracting every source for those days."""
    deliver(landing, "orders/order_events/dt=2026-03-01/2026-03-01-000.jsonl")
    deliver(landing, "orders/order_events/dt=2026-03-01/2026-03-01-001.jsonl")
    deliver(landing, "payments/payment_events/dt=2026-03-02/2026-03-02-000.jsonl")
    requests, cursor = evaluate(sensor)
    assert requests == [("orders/order_events,payments/payment_events", "2026-03-01", "2026-03-02")]
    # Nothing new: nothing requested, however often the sensor ticks.
    assert evaluate(sensor, cursor) == ([], cursor)


def test_a_late_file_reopens_its_old_day_and_shares_the_new_days_run(landing, sensor):
    """A late file and a new day a few days apart are one run; days far apart are two."""
    deliver(landing, "orders/order_events/dt=2026-03-01/2026-03-01-000.jsonl")
    deliver(landing, "orders/order_events/dt=2026-03-02/2026-03-02-000.jsonl")
    _, cursor = evaluate(sensor)
    time.sleep(0.01)
    deliver(landing, "orders/order_events/dt=2026-03-01/2026-03-04-late.jsonl")
    deliver(landing, "orders/order_events/dt=2026-03-04/2026-03-04-000.jsonl")
    requests, cursor = evaluate(sensor, cursor)
    assert requests == [("orders/order_events", "2026-03-01", "2026-03-04")]
    time.sleep(0.01)
    deliver(landing, "orders/order_events/dt=2026-03-04/2026-03-20-late.jsonl")
    deliver(landing, "orders/order_events/dt=2026-03-20/2026-03-20-000.jsonl")
    requests, _ = evaluate(sensor, cursor)
    assert requests == [
        ("orders/order_events", "2026-03-04", "2026-03-04"),
        ("orders/order_events", "2026-03-20", "2026-03-20"),
    ]


def test_a_changed_file_is_seen_again(landing, sensor):
    path = deliver(landing, "shipping/shipment_events/dt=2026-03-03/2026-03-03-000.jsonl")
    _, cursor = evaluate(sensor)
    time.sleep(0.01)
    path.write_text('{"event_id": "x"}\n{"event_id": "y"}\n')
    assert evaluate(sensor, cursor)[0] == [("shipping/shipment_events", "2026-03-03", "2026-03-03")]


def test_after_a_restart_nothing_is_repeated_or_missed(landing, sensor):
    """The cursor is all the sensor remembers: a new process with it sees only new files."""
    deliver(landing, "orders/order_events/dt=2026-03-01/2026-03-01-000.jsonl")
    _, cursor = evaluate(sensor)
    # Delivered while the daemon was down, with the same change time as the last seen file.
    seen = landing / "orders/order_events/dt=2026-03-01/2026-03-01-000.jsonl"
    stamp = seen.stat().st_mtime_ns
    twin = deliver(landing, "clickstream/sessions/dt=2026-03-01/2026-03-01-000.jsonl")
    os.utime(twin, ns=(stamp, stamp))
    restarted = build_new_data_sensor(event_sources(), platform_days)
    requests, cursor = evaluate(restarted, cursor)
    assert requests == [("clickstream/sessions", "2026-03-01", "2026-03-01")]
    assert evaluate(restarted, cursor)[0] == []


def test_unsafe_or_foreign_names_are_never_requested(landing, sensor, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    folder = landing / "orders/order_events/dt=2026-03-01"
    folder.mkdir(parents=True)
    (folder / "link.jsonl").symlink_to(outside)
    deliver(landing, "orders/order_events/dt=2026-03-01/notes.txt")
    deliver(landing, "orders/order_events/dt=not-a-day/2026-03-01-000.jsonl")
    deliver(landing, "orders/order_events/dt=2020-01-01/2020-01-01-000.jsonl")  # before day one
    assert evaluate(sensor)[0] == []
