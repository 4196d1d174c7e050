"""Security: PII never leaves the raw lake readable, secrets never reach Dagster, sources are
only ever read.

Real sources only: SQLite databases, landing files and the demo REST API on 127.0.0.1. Write
attempts through the database connections themselves are tested in
tests/test_extract_database.py (`test_sqlite_connection_refuses_writes`,
`test_postgres_connection_refuses_writes`); secrets in logs, events and GraphQL answers in
tests/test_instance_runs.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import LANDSCAPE_START

from batch_platform import pii
from batch_platform.dbt_project import load_manifest
from batch_platform.extract.api import ApiSettings, extract_api
from batch_platform.extract.database import extract_database
from batch_platform.extract.events import extract_events
from batch_platform.extract.lake import partition_path
from batch_platform.registry import load_registry
from batch_platform.simulator.api_server import create_app, serve_in_thread

DAY = date(2026, 3, 2)


@pytest.fixture(scope="module")
def specs():
    return {spec.path: spec for spec in load_registry(load_manifest())}


def quarantine(data: Path, spec) -> list[dict]:
    path = partition_path(data / "lake", "quarantine", spec, DAY)
    return pq.ParquetFile(path).read().to_pylist()


def leaks(rows: list[dict], secrets: set[str]) -> list[tuple[str, str]]:
    """(column, secret) for every secret found, case-insensitively, in any column's text."""
    found = []
    for row in rows:
        for column, value in row.items():
            text = str(value).lower()
            found += [(column, s) for s in secrets if s.lower() in text]
    return found


# --- PII in the quarantine -----------------------------------------------------------------

# customer rows that break the contract, each carrying PII; updated on DAY.
BAD_CUSTOMERS = [
    # created_at does not cast: quarantined, its email, phone and name must be masked
    ("c4", "dana.quarantine@example.com", "+49 170 5550101", "Dana Quist", "DE", "soon"),
    # no email at all (required): the name and phone are still PII
    ("c5", None, "+33 6 5550 2020", "Eli Nullmail", "FR", "2026-02-01 10:00:00"),
    # country missing (required): PII in every other field
    ("c6", "fay.nocountry@example.com", None, "Fay O'Brien; DROP", None, "2026-02-01 10:00:00"),
]
GOOD_CUSTOMER = ("c7", "gus.loaded@example.com", None, "Gus Good", "ES", "2026-02-01 10:00:00")


def test_a_database_pii_source_quarantines_records_with_their_pii_masked(specs, tmp_path):
    spec = specs["customers/customers"]
    assert spec.pii_columns == ("email", "phone", "full_name")
    path = tmp_path / "services" / "customers.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers (customer_id TEXT, email TEXT, phone TEXT, full_name TEXT, "
            "country TEXT, created_at TEXT, updated_at TEXT)"
        )
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, '2026-03-02 08:00:00')",
            [*BAD_CUSTOMERS, GOOD_CUSTOMER],
        )

    stats = extract_database(spec, DAY, tmp_path)

    assert (stats.rows_loaded, stats.rows_quarantined) == (1, 3)
    rows = quarantine(tmp_path, spec)
    assert [(r["position"], r["reason"]) for r in rows] == [
        (1, "created_at: expected TIMESTAMP, got soon"),
        (2, "missing required field email"),
        (3, "missing required field country"),
    ]
    personal = {v for row in BAD_CUSTOMERS for v in row[1:4] if v}
    assert leaks(rows, personal) == []
    assert leaks([{"reasons": stats.quarantine_reasons}], personal) == []
    # Masked the way staging masks (so a quarantined customer can be matched), the rest clear.
    key = pii.salt()
    first = json.loads(rows[0]["raw"])
    assert first["customer_id"] == "c4" and first["created_at"] == "soon"
    assert first["email"] == pii.mask("dana.quarantine@example.com", key)
    assert first["full_name"] == pii.mask("Dana Quist", key)
    assert json.loads(rows[1]["raw"])["email"] is None
    # The loaded row keeps its PII in the raw lake (staging masks it); only it.
    path = partition_path(tmp_path / "lake", "raw", spec, DAY)
    [loaded] = pq.ParquetFile(path).read().to_pylist()
    assert loaded["email"] == "gus.loaded@example.com"


def test_reasons_never_quote_a_pii_value_and_unknown_fields_of_a_pii_source_are_masked(
    specs, tmp_path
):
    """An events source with PII columns: a value rejected for its type, a value outside the
    accepted ones, a renamed field the contract does not know, a line that is not JSON."""
    spec = specs["orders/order_events"]
    pii_columns = {"customer_id", "channel", "total_amount"}
    spec = replace(
        spec,
        columns=tuple(replace(c, pii=c.name in pii_columns) for c in spec.columns),
    )
    base = {
        "event_type": "order_placed",
        "occurred_at": "2026-03-02T10:00:00",
        "order_id": "o1",
        "customer_id": "cust-hidden-01",
        "channel": "web",
        "currency": "EUR",
        "total_amount": 1,
        "discount_amount": 0,
        "items": [],
    }
    records = [
        {**base, "event_id": "e1", "total_amount": "ivy.amount@example.com"},
        {**base, "event_id": "e2", "channel": "jo.channel@example.com"},
        {**base, "event_id": "e3", "customer_email": "kim.drift@example.com", "currency": 7},
        {**base, "event_id": "e4", "customer_id": "cust-hidden-04", "total_amount": -3},
        {**base, "event_id": "e5"},  # loaded
    ]
    lines = [json.dumps(r) for r in records]
    lines.append('{"event_id": "e6", "customer_id": "lee.broken@example.com", ')  # not JSON
    lines.append('["mo.array@example.com"]')  # JSON, not an object
    folder = tmp_path / "landing" / f"orders/order_events/dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")

    stats = extract_events(spec, DAY, tmp_path)

    assert (stats.rows_loaded, stats.rows_quarantined) == (2, 5)  # e3 and e5 load
    rows = quarantine(tmp_path, spec)
    assert [r["reason"] for r in rows] == [
        "total_amount: expected DECIMAL(12,2) (value not shown: PII)",
        "channel: not an accepted value (value not shown: PII)",
        "total_amount: must be >= 0 (value not shown: PII)",
        "malformed JSON",
        "not a JSON object",
    ]
    secrets = {
        "ivy.amount@example.com",
        "jo.channel@example.com",
        "cust-hidden-01",
        "cust-hidden-04",
        "lee.broken@example.com",
        "mo.array@example.com",
    }
    assert leaks(rows, secrets) == []
    assert stats.schema_drift == ["customer_email"]
    key = pii.salt()
    masked = json.loads(rows[0]["raw"])
    assert masked["event_id"] == "e1" and masked["order_id"] == "o1"  # non-PII stays readable
    assert masked["total_amount"] == pii.mask("ivy.amount@example.com", key)
    withheld = json.loads(rows[3]["raw"])
    assert withheld["withheld"] == pii.WITHHELD
    assert withheld["masked"] == pii.mask(lines[5], key)
    # e3 loaded; had it been quarantined, its unknown field would be masked too:
    drifted = json.loads(pii.mask_record(lines[2], frozenset({"event_id"}), key))
    assert drifted["customer_email"] == pii.mask("kim.drift@example.com", key)
    assert drifted["currency"] == pii.mask("7", key)


# --- Sources are only ever read -------------------------------------------------------------


def test_api_and_event_sources_are_only_ever_read(specs, landscape, tmp_path, monkeypatch):
    """The database connections refuse writes (tests/test_extract_database.py); the API is
    only ever sent GETs, and landing files are left byte for byte and time for time as found."""
    methods: list[str] = []
    app = create_app(landscape, "read-only-token")

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            methods.append(scope["method"])
        await app(scope, receive, send)

    with serve_in_thread(recording) as base:
        monkeypatch.setenv("CATALOG_API_URL", f"{base}/catalog")
        monkeypatch.setenv("CATALOG_API_TOKEN", "read-only-token")
        stats = extract_api(specs["catalog/products"], LANDSCAPE_START, tmp_path, ApiSettings())
    assert stats.rows_loaded > 0 and methods and set(methods) == {"GET"}

    data = tmp_path / "events"
    shutil.copytree(landscape / "landing", data / "landing", symlinks=True)

    def landing_state():
        return sorted(
            (p.relative_to(data).as_posix(), p.read_bytes(), p.stat().st_mtime_ns)
            for p in (data / "landing").rglob("*")
            if p.is_file()
        )

    before = landing_state()
    stats = extract_events(specs["orders/order_events"], LANDSCAPE_START, data)
    assert stats.rows_read > 0
    assert landing_state() == before
