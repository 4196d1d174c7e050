"""Reliability: faults survived, nothing lost, nothing doubled.

Real faults only: an extract process killed with SIGKILL while it replaces a partition, a REST
API on 127.0.0.1 that times out, rate-limits, fails and drops connections, a database that is
gone or whose table was renamed, and a day re-run over the built pipeline with a late event
landing. Two runs writing the warehouse at once are in tests/test_instance_runs.py.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from support import LANDSCAPE_START, expected_counts

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.extract.api import ApiSettings, ApiUnavailable, extract_api
from batch_platform.extract.events import extract_events
from batch_platform.extract.factory import EXTRACTORS, build_extract_asset
from batch_platform.extract.lake import partition_path
from batch_platform.paths import DATA_DIR_ENV
from batch_platform.registry import load_registry
from batch_platform.simulator.api_server import create_app, serve_in_thread

DAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def specs():
    return {spec.path: spec for spec in load_registry(load_manifest())}


def order_event(number: int, **changes) -> str:
    record = {
        "event_id": f"e{number}",
        "event_type": "order_placed",
        "occurred_at": "2026-03-02T10:00:00",
        "order_id": f"o{number}",
        "customer_id": "c1",
        "channel": "web",
        "currency": "EUR",
        "total_amount": 10.5,
        "discount_amount": 0,
        "items": [{"product_id": "p1", "quantity": 1, "unit_price": 10.5}],
        **changes,
    }
    return json.dumps(record) + "\n"


def partition_files_for(data: Path, spec, day: date) -> list[Path]:
    return [partition_path(data / "lake", zone, spec, day) for zone in ("raw", "quarantine")]


def leftovers_for(data: Path, spec, day: date) -> list[Path]:
    folders = [f.parent for f in partition_files_for(data, spec, day)]
    return [t for folder in folders for t in folder.glob(".data.parquet.*.tmp")]


def partition_files(data: Path, spec) -> list[Path]:
    return partition_files_for(data, spec, DAY)


def leftovers(data: Path, spec) -> list[Path]:
    return leftovers_for(data, spec, DAY)


def accounted(data: Path, spec, stats, day: date = DAY) -> bool:
    files = partition_files_for(data, spec, day)
    raw, quarantined = (pq.read_metadata(f).num_rows for f in files)
    return stats.rows_read == raw + quarantined + stats.rows_duplicate


# --- A run killed while it replaces a partition --------------------------------------------

_CHILD = """
import pickle, sys
from datetime import date
from pathlib import Path
from batch_platform.extract.events import extract_events
from batch_platform.extract.factory import EXTRACTORS, build_extract_asset
spec = pickle.loads(Path(sys.argv[1]).read_bytes())
extract_events(spec, date.fromisoformat(sys.argv[2]), Path(sys.argv[3]))
"""


def _kill_when_writing(args: list[str], folder: Path, deadline: float) -> bool:
    """Start the extract; SIGKILL it the moment a temporary file of `folder` exists.

    True if it was killed mid-write, False if it finished first (too fast to catch).
    """
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while child.poll() is None:
            if folder.is_dir() and any(folder.glob(".data.parquet.*.tmp")):
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
                return True
            assert time.monotonic() < deadline, "the extract did not finish or write in time"
            time.sleep(0.001)
        assert child.returncode == 0, child.stderr.read().decode()
        return False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("zone", ["raw", "quarantine"])
def test_a_run_killed_mid_replace_keeps_the_old_partition_and_the_next_run_completes_it(
    specs, tmp_path, zone
):
    spec = specs["orders/order_events"]
    landing = tmp_path / "landing" / f"orders/order_events/dt={DAY}"
    landing.mkdir(parents=True)
    # The partition as it stands: 5 events and 1 rejected line.
    (landing / "a.jsonl").write_text("".join(order_event(n) for n in range(5)) + "{oops\n")
    extract_events(spec, DAY, tmp_path)
    before = [f.read_bytes() for f in partition_files(tmp_path, spec)]

    # A big delivery lands: enough valid and rejected lines that each file takes a while.
    count = 60_000
    with open(landing / "b.jsonl", "w") as big:
        for n in range(count):
            big.write(order_event(n) if n % 2 else order_event(n, channel="fax"))
    spec_file = tmp_path / "spec.pickle"
    spec_file.write_bytes(pickle.dumps(spec))
    args = [sys.executable, "-c", _CHILD, str(spec_file), DAY.isoformat(), str(tmp_path)]
    target = partition_path(tmp_path / "lake", zone, spec, DAY).parent
    deadline = time.monotonic() + 300
    for _attempt in range(5):
        if _kill_when_writing(args, target, deadline) and leftovers(tmp_path, spec):
            break  # killed while a temporary file was still being written
        # It finished, or got to its renames before the signal landed: the partition must be
        # whole and new then. Put the old one back and try again.
        assert [f.read_bytes() for f in partition_files(tmp_path, spec)] != before
        for path, content in zip(partition_files(tmp_path, spec), before, strict=True):
            path.write_bytes(content)
    else:
        pytest.fail("the extract never got killed while writing")

    # Killed mid-replace: both files are exactly what they were, the half-written file is
    # only a hidden temporary that no reader's `*.parquet` glob sees.
    assert [f.read_bytes() for f in partition_files(tmp_path, spec)] == before
    assert leftovers(tmp_path, spec)

    # The next run completes the partition and clears the dead writer's temporary file.
    stats = extract_events(spec, DAY, tmp_path)
    assert leftovers(tmp_path, spec) == []
    assert stats.rows_read == 5 + 1 + count
    assert stats.rows_loaded == 5 + count // 2 - 2  # e1 and e3 arrive twice
    assert stats.rows_quarantined == 1 + count // 2
    assert accounted(tmp_path, spec, stats)


# --- An API that times out, rate-limits, fails or drops the connection ---------------------

API_TOKEN = "reliability-token-3c1f"
FAST = ApiSettings(
    timeout=0.5, attempts=3, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01, page_size=40
)


@pytest.fixture
def api(landscape, specs, monkeypatch):
    """Start the demo API over the session landscape with a fault plan; env points at it."""
    monkeypatch.setenv("CATALOG_API_TOKEN", API_TOKEN)
    with ExitStack() as servers:

        def start(plan: list[str]) -> None:
            app = create_app(landscape, API_TOKEN, plan, stall_seconds=2.0)
            base = servers.enter_context(serve_in_thread(app))
            monkeypatch.setenv("CATALOG_API_URL", f"{base}/catalog")

        yield start


def test_every_kind_of_api_fault_on_every_page_is_survived_with_exactly_the_right_rows(
    specs, api, tmp_path
):
    spec, day = specs["catalog/products"], LANDSCAPE_START
    api([])
    clean = extract_api(spec, day, tmp_path / "clean", FAST)
    assert clean.input_files >= 4  # enough pages for a fault on each
    expected = [f.read_bytes() for f in partition_files_for(tmp_path / "clean", spec, day)]

    # Page 1: a stall past the timeout; page 2: 503 then a connection dropped mid-body;
    # page 3: a 429 with Retry-After; page 4: a drop.
    api(["timeout", "ok", "503", "drop", "ok", "429", "ok", "drop"])
    stats = extract_api(spec, day, tmp_path / "faulty", FAST)

    assert stats == clean
    assert [f.read_bytes() for f in partition_files_for(tmp_path / "faulty", spec, day)] == expected


@pytest.mark.parametrize("fault", ["timeout", "503", "429", "drop"])
def test_an_api_fault_that_outlasts_the_retries_fails_cleanly_keeping_the_old_partition(
    specs, api, tmp_path, fault
):
    spec, day = specs["catalog/products"], LANDSCAPE_START
    api([])
    extract_api(spec, day, tmp_path, FAST)
    files = partition_files_for(tmp_path, spec, day)
    before = [f.read_bytes() for f in files]

    # Page 1 answers; page 2 fails on every attempt, after page 1 was staged.
    api(["ok", *[fault] * FAST.attempts])
    with pytest.raises(ApiUnavailable, match=f"page 2: gave up after {FAST.attempts} attempts"):
        extract_api(spec, day, tmp_path, FAST)

    assert [f.read_bytes() for f in files] == before  # no partial page, no partial day
    assert leftovers_for(tmp_path, spec, day) == []
    # A first run that fails writes nothing at all.
    api(["ok", *[fault] * FAST.attempts])
    with pytest.raises(ApiUnavailable):
        extract_api(spec, day, tmp_path / "first", FAST)
    assert not (tmp_path / "first" / "lake").exists()


# --- A source database that is gone or changed ----------------------------------------------


def _inventory(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE stock_levels (product_id TEXT, on_hand INTEGER, updated_at TEXT)")
        db.executemany(
            "INSERT INTO stock_levels VALUES (?, ?, '2026-03-02 09:00:00')",
            [("p1", 4), ("p2", 0)],
        )
    return path


def _break_renamed(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE stock_levels RENAME TO stock_levels_v2")
    return 'inventory/stock_levels: table "stock_levels" not found in the database at '


def _break_gone(path: Path) -> str:
    path.unlink()
    return "inventory/stock_levels: cannot connect to the database at $INVENTORY_DB_URL"


@pytest.mark.parametrize("fault", [_break_renamed, _break_gone], ids=["renamed", "gone"])
def test_a_database_source_that_is_gone_or_renamed_fails_the_run_naming_it_and_writes_nothing(
    specs, tmp_path, monkeypatch, fault
):
    spec = specs["inventory/stock_levels"]
    database = _inventory(tmp_path / "db" / "inventory.sqlite")
    monkeypatch.setenv("INVENTORY_DB_URL", f"sqlite:///{database}")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    asset = build_extract_asset(spec, platform_days)
    assert dg.materialize([asset], partition_key=DAY.isoformat()).success
    files = partition_files(tmp_path, spec)
    before = [f.read_bytes() for f in files]

    message = fault(database)
    result = dg.materialize([asset], partition_key=DAY.isoformat(), raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    shown = failure.step_failure_data.user_failure_data.description
    assert shown.startswith(message) and "\n" not in shown, shown
    # A fault that asking again cannot fix is not retried by Dagster's retry policy.
    kinds = {e.event_type for e in result.all_events}
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    assert result.get_asset_materialization_events() == []
    assert [f.read_bytes() for f in files] == before


# --- Re-runs are idempotent; a late event lands exactly once ---------------------------------

LATE_DAY = "2026-03-04"
REPLAYED = [
    dg.AssetKey(["staging", "stg_orders__order_events"]),
    dg.AssetKey(["middle_platform", "fct_orders"]),
]


def _tables(data: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return {
            key.to_user_string(): sorted(
                con.execute(f"SELECT * FROM {'.'.join(key.path)}").fetchall(),  # noqa: S608
                key=repr,
            )
            for key in REPLAYED
        }


def _event_id(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("event_id") if isinstance(record, dict) else None


@pytest.mark.slow
def test_a_late_event_lands_once_and_re_running_a_day_changes_nothing(
    pipeline, specs, tmp_path, monkeypatch
):
    from batch_platform.definitions import defs

    data = tmp_path / "data"
    shutil.copytree(pipeline, data)
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    spec, day = specs["orders/order_events"], date.fromisoformat(LATE_DAY)
    before = _tables(data)
    # Re-extracting a day the pipeline already extracted rewrites the very same files.
    built = [f.read_bytes() for f in partition_files_for(data, spec, day)]
    base = extract_events(spec, day, data)
    assert [f.read_bytes() for f in partition_files_for(data, spec, day)] == built
    loaded = {
        row["event_id"]
        for row in pq.ParquetFile(partition_files_for(data, spec, day)[0]).read().to_pylist()
    }
    folder = data / "landing" / f"orders/order_events/dt={LATE_DAY}"
    again = next(  # a line of the day that was loaded: delivered again, it is a duplicate
        line
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if _event_id(line) in loaded
    )

    # Days later the relay files a late event into the old day's folder, together with a
    # second delivery of an event that day already holds.
    late = order_event(
        1, event_id="late-evt-1", order_id="late-ord-1", occurred_at=f"{LATE_DAY}T12:00:00"
    )
    (folder / "late-redelivery.jsonl").write_text(late + again + "\n")

    def rerun() -> dict[str, list[tuple]]:
        stats = extract_events(spec, day, data)
        assert stats.rows_loaded == base.rows_loaded + 1
        assert stats.rows_duplicate == base.rows_duplicate + 1
        assert accounted(data, spec, stats, day)
        result = dg.materialize(
            list(defs.assets),
            selection=dg.AssetSelection.keys(*REPLAYED),
            resources={"dbt": defs.resources["dbt"]},
            partition_key=LATE_DAY,
        )
        assert result.success
        return _tables(data)

    after = rerun()

    events = after["staging/stg_orders__order_events"]
    added = [row for row in events if row not in before["staging/stg_orders__order_events"]]
    assert len(events) == len(before["staging/stg_orders__order_events"]) + 1
    assert [row[0] for row in added] == ["late-evt-1"]
    assert sum(row[0] == _event_id(again) for row in events) == 1
    orders = after["middle_platform/fct_orders"]
    assert [row for row in orders if row not in before["middle_platform/fct_orders"]] == [
        row for row in orders if "late-ord-1" in row
    ]
    assert len(orders) == len(before["middle_platform/fct_orders"]) + 1
    assert [row for row in before["middle_platform/fct_orders"] if row not in orders] == []

    # Any number of re-runs of the day: the same tables, row for row.
    assert rerun() == after


# --- Extracts side by side in one process ---------------------------------------------------


def test_extracts_on_four_threads_of_one_process_load_exactly_the_ground_truth(
    data_dir, ground_truth, specs
):
    """Loads share one scratch DuckDB per process, each in a connection of its own with TEMP
    tables and, for a PII source (customers), a masking function of its own: run side by side,
    no load may see another's records or trip over another's function."""
    jobs = [
        (specs[source], date.fromisoformat(day))
        for source, truth in ground_truth["sources"].items()
        if truth["access"] in ("events", "database")  # the API sources need their server
        for day in truth["partitions"]
    ]
    assert any(spec.pii_columns for spec, _ in jobs)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda job: EXTRACTORS[job[0].access](job[0], job[1], data_dir), jobs)
        )
    for (spec, day), stats in zip(jobs, results, strict=True):
        truth = ground_truth["sources"][spec.path]
        raw, quarantined = (
            pq.read_metadata(f).num_rows for f in partition_files_for(data_dir, spec, day)
        )
        assert (raw, quarantined) == expected_counts(truth, day.isoformat()), f"{spec.path} {day}"
        assert accounted(data_dir, spec, stats, day), f"{spec.path} {day}"
