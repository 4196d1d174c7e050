"""The demo landscape: deterministic, append-stable, true to its contract and its ground truth.

The checks here re-derive every number of landscape.json from the files and databases with
code of their own (the contract is read from the dbt `_sources.yml` files, not from the
simulator), so a bug in the simulator's bookkeeping cannot hide behind itself.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from contextlib import closing
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml

from batch_platform.paths import DBT_PROJECT_DIR
from batch_platform.simulator import FaultRates, LandscapeError, simulate
from batch_platform.simulator.contract import CONTRACTS, EVENT_SOURCES, classify
from batch_platform.simulator.landing import GARBAGE_LINES, contract_violation, malformed_line

START = date(2026, 3, 1)
DAYS = 8
SCALE = 0.05
CLI = Path(sys.executable).with_name("batch-platform")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}")
DB_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")
SERVICES = ("inventory", "customers", "catalog", "promotions")


def tree(root: Path) -> dict[str, str]:
    """Every file under root (relative path -> sha256)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def contract_tables() -> dict[str, tuple[str, list[dict]]]:
    """source path -> (access method, columns) straight from the dbt source YAML."""
    tables = {}
    for path in sorted((DBT_PROJECT_DIR / "models" / "staging").glob("*/_sources.yml")):
        for source in yaml.safe_load(path.read_text())["sources"]:
            for table in source["tables"]:
                extract = table.get("config", {}).get("meta", {}).get("extract")
                if extract:  # tables without it are the platform's own, not a service's
                    tables[f"{source['name']}/{table['name']}"] = (
                        extract["access"],
                        table["columns"],
                    )
    return tables


def breaks_contract(columns: list[dict], event: dict) -> bool:
    """An independent reading of the contract: required, type, min, accepted values."""
    for column in columns:
        meta = column.get("config", {}).get("meta", {})
        value, kind = event.get(column["name"]), column["data_type"]
        if value is None:
            if meta.get("required"):
                return True
            continue
        if kind == "timestamp":
            try:
                datetime.fromisoformat(value)
            except (TypeError, ValueError):
                return True
        elif kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
            return True
        elif kind.startswith("decimal") and not isinstance(value, int | float):
            return True
        elif kind.startswith("struct") and not isinstance(value, list):
            return True
        if "min" in meta and value < meta["min"]:
            return True
        if "accepted_values" in meta and value not in meta["accepted_values"]:
            return True
    return False


def read_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n"), f"{path} must end with a newline"
    return text[:-1].split("\n")


def cents(amount: float) -> int:
    return round(amount * 100)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("full") / "data"
    return folder, simulate(folder, START, DAYS, scale=SCALE)


@pytest.fixture(scope="module")
def appended(tmp_path_factory) -> tuple[Path, dict, dict, dict]:
    """5 days, then 3 appended: (folder, files before, manifest before, manifest after)."""
    folder = tmp_path_factory.mktemp("appended") / "data"
    before_manifest = simulate(folder, START, 5, scale=SCALE)
    before = tree(folder)
    after_manifest = simulate(folder, None, 3, append=True)
    return folder, before, before_manifest, after_manifest


def test_simulator_contract_is_the_dbt_contract():
    tables = contract_tables()
    kinds = {"varchar": "text", "timestamp": "timestamp", "integer": "integer"}
    for source in EVENT_SOURCES:
        access, columns = tables[source]
        assert access == "events"
        expected = []
        for column in columns:
            meta = column.get("config", {}).get("meta", {})
            kind = column["data_type"]
            kind = "decimal" if kind.startswith("decimal") else kinds.get(kind, "items")
            expected.append(
                (
                    column["name"],
                    kind,
                    bool(meta.get("required")),
                    meta.get("min"),
                    tuple(meta.get("accepted_values", ())),
                )
            )
        ours = [(c.name, c.kind, c.required, c.minimum, c.accepted) for c in CONTRACTS[source]]
        assert ours == expected, source


def test_database_and_api_tables_have_the_contract_columns(full):
    folder, manifest = full
    for source, (access, columns) in contract_tables().items():
        if access == "events":
            continue
        entry = manifest["sources"][source]
        assert entry["access"] == access
        with closing(sqlite3.connect(folder / entry["database"])) as db:
            names = [row[1] for row in db.execute(f"PRAGMA table_info({entry['table']})")]
            indexes = [row[1] for row in db.execute(f"PRAGMA index_list({entry['table']})")]
        assert names == [c["name"] for c in columns], source
        assert f"{entry['table']}_updated_at" in indexes


def test_same_arguments_give_identical_bytes(tmp_path, full):
    folder, _ = full
    again = tmp_path / "again"
    simulate(again, START, DAYS, scale=SCALE)
    assert tree(again) == tree(folder)
    other = tmp_path / "other"
    simulate(other, START, 2, seed=8, scale=SCALE)
    first_file = "landing/orders/order_events/dt=2026-03-01/2026-03-01-000.jsonl"
    assert tree(other)[first_file] != tree(folder)[first_file]


def test_append_equals_one_run(full, appended):
    folder, _ = full
    appended_folder, _, _, after_manifest = appended
    assert tree(appended_folder) == tree(folder)
    assert after_manifest == full[1]


def test_append_adds_new_days_and_late_files_only(appended):
    folder, before, before_manifest, _ = appended
    after = tree(folder)
    first_new = (START + timedelta(days=5)).isoformat()
    changed = {path for path in before if after[path] != before[path]}
    assert not [p for p in before if p not in after]
    assert changed <= {"landscape.json", *(f"services/{s}.sqlite" for s in SERVICES)}
    assert "landscape.json" in changed and "services/inventory.sqlite" in changed
    added = set(after) - set(before)
    # Every file named by a new delivery day is new, and only those are.
    by_delivery = {p for p in after if p.startswith("landing/") and p.split("/")[-1] >= first_new}
    assert added == by_delivery
    # In old event-day folders, exactly the late files the manifest said were in flight.
    old_late = {p for p in added if p.split("/")[-2].removeprefix("dt=") < first_new}
    expected = {
        f"landing/{source}/dt={day}/{due}-late.jsonl"
        for source, days in before_manifest["in_flight"].items()
        for day, dues in days.items()
        for due in dues
        if due < (START + timedelta(days=8)).isoformat()
    }
    assert old_late == expected
    assert expected, "the fixture should have late events crossing the append"
    assert all(p.endswith("-late.jsonl") for p in old_late)


def test_in_flight_events_arrive_with_the_append(appended):
    folder, _, before_manifest, after_manifest = appended
    for source, days in before_manifest["in_flight"].items():
        for day, dues in days.items():
            for due, count in dues.items():
                path = folder / "landing" / source / f"dt={day}" / f"{due}-late.jsonl"
                valid = {
                    event["event_id"]
                    for line in read_lines(path)
                    for verdict, event in [classify(source, line)]
                    if verdict == "valid"
                }
                assert len(valid) == count, path
    # Breaks explained by events in flight heal once those events are delivered.
    for kind, healing in before_manifest["business_faults_in_flight"].items():
        assert set(healing) <= set(before_manifest["business_faults"][kind])
        assert not set(healing) & set(after_manifest["business_faults"][kind]), kind
        lasting = set(before_manifest["business_faults"][kind]) - set(healing)
        assert lasting <= set(after_manifest["business_faults"][kind]), kind


def test_ground_truth_matches_the_event_files(full):
    folder, manifest = full
    tables = contract_tables()
    days = [(START + timedelta(days=n)).isoformat() for n in range(DAYS)]
    assert (manifest["start"], manifest["end"], manifest["days"]) == (
        days[0],
        (START + timedelta(days=DAYS)).isoformat(),
        DAYS,
    )
    channels = {d: defaultdict(Counter) for d in days}
    for source in EVENT_SOURCES:
        partitions = manifest["sources"][source]["partitions"]
        assert sorted(partitions) == days
        folders = sorted((folder / "landing" / source).iterdir())
        assert {f.name for f in folders} <= {f"dt={d}" for d in days}
        for day in days:
            counts = Counter()
            seen_lines, seen_ids = set(), set()
            files = sorted((folder / "landing" / source / f"dt={day}").glob("*.jsonl"))
            for path in files:
                delivery = path.name[:10]
                assert delivery >= day
                if delivery > day:
                    assert path.name == f"{delivery}-late.jsonl"
                else:
                    assert re.fullmatch(rf"{day}-00[0-3]\.jsonl", path.name)
                lines = read_lines(path)
                counts["lines"] += len(lines)
                counts["late_lines"] += len(lines) if delivery > day else 0
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        counts["malformed"] += 1
                        continue
                    if line in seen_lines:  # a verbatim re-delivery
                        counts["duplicates"] += 1
                        continue
                    if breaks_contract(tables[source][1], event):
                        counts["invalid"] += 1
                        continue
                    seen_lines.add(line)
                    assert TIMESTAMP.fullmatch(event["occurred_at"])
                    assert event["occurred_at"][:10] == day
                    assert event["event_id"] not in seen_ids
                    seen_ids.add(event["event_id"])
                    counts["loaded"] += 1
                    if source == "clickstream/sessions":
                        channels[day][event["channel"]]["sessions"] += 1
                    elif event.get("event_type") == "order_placed":
                        figures = channels[day][event["channel"]]
                        figures["orders"] += 1
                        figures["gmv"] += cents(event["total_amount"])
                        figures["discount"] += cents(event["discount_amount"])
                        figures["orders_with_promotion"] += event["promotion_code"] is not None
            stats = partitions[day]
            assert stats["files"] == len(files)
            assert sum(stats["invalid_by_kind"].values()) == stats["invalid"]
            for key in ("lines", "late_lines", "duplicates", "malformed", "invalid", "loaded"):
                assert stats[key] == counts[key], (source, day, key)
            assert stats["lines"] == sum(
                stats[k] for k in ("loaded", "duplicates", "malformed", "invalid")
            )
    for day in days:
        for channel, figures in manifest["channels"][day].items():
            mine = channels[day][channel]
            assert figures["orders"] == mine["orders"]
            assert figures["sessions"] == mine["sessions"]
            assert figures["orders_with_promotion"] == mine["orders_with_promotion"]
            assert figures["gmv"] == f"{mine['gmv'] / 100:.2f}"
            assert figures["discount"] == f"{mine['discount'] / 100:.2f}"
    totals = {s: manifest["sources"][s]["totals"] for s in EVENT_SOURCES}
    for kind in ("malformed", "invalid", "duplicates", "late_lines"):
        assert sum(t[kind] for t in totals.values()) > 0, f"the fixture should show {kind}"


def test_ground_truth_matches_the_databases(full):
    folder, manifest = full
    for entry in manifest["sources"].values():
        if entry["access"] == "events":
            continue
        with closing(sqlite3.connect(folder / entry["database"])) as db:
            query = f"SELECT updated_at FROM {entry['table']}"  # noqa: S608 (our own table names)
            rows = db.execute(query).fetchall()
        assert all(DB_TIMESTAMP.fullmatch(r[0]) for r in rows)
        per_day = Counter(r[0][:10] for r in rows)
        assert {d: p["rows"] for d, p in entry["partitions"].items() if p["rows"]} == per_day
        assert entry["totals"]["rows"] == len(rows)


def test_business_faults_are_what_a_reconciliation_finds(full):
    folder, manifest = full
    ordered, paid, cancelled, shipped, totals, captured = set(), set(), set(), set(), {}, {}
    for source in ("orders/order_events", "payments/payment_events", "shipping/shipment_events"):
        for path in sorted((folder / "landing" / source).rglob("*.jsonl")):
            for line in read_lines(path):
                verdict, event = classify(source, line)
                if verdict != "valid":
                    continue
                order_id, kind = event["order_id"], event["event_type"]
                if source.startswith("orders"):
                    ordered.add(order_id)
                    totals[order_id] = cents(event["total_amount"])
                    paid.update([order_id] if kind == "order_paid" else [])
                    cancelled.update([order_id] if kind == "order_cancelled" else [])
                elif kind == "payment_captured":
                    captured[order_id] = cents(event["amount"])
                elif source.startswith("shipping"):
                    shipped.add(order_id)
    with closing(sqlite3.connect(folder / "services" / "inventory.sqlite")) as db:
        sales = db.execute(
            "SELECT movement_id, order_id FROM stock_movements WHERE reason = 'sale'"
        ).fetchall()
    expected = {
        "paid_without_capture": sorted(paid - set(captured)),
        "amount_mismatch": sorted(o for o, a in captured.items() if o in totals and a != totals[o]),
        "shipment_for_unpaid_or_cancelled": sorted(
            o for o in shipped if o not in paid or o in cancelled
        ),
        "movement_without_order": sorted(m for m, o in sales if o not in ordered),
    }
    assert manifest["business_faults"] == expected
    for kind, found in expected.items():
        injected = set(found) - set(manifest["business_faults_in_flight"][kind])
        assert injected, f"the fixture should show injected {kind}"
    assert manifest["business_faults_in_flight"]["amount_mismatch"] == []


def test_orders_stock_and_customers_are_consistent(full):
    folder, _ = full
    services = folder / "services"
    with closing(sqlite3.connect(services / "promotions.sqlite")) as db:
        pct = dict(db.execute("SELECT promotion_code, discount_pct FROM campaigns"))
    with closing(sqlite3.connect(services / "catalog.sqlite")) as db:
        unchanged = dict(
            db.execute(
                "SELECT product_id, unit_price FROM products WHERE updated_at < ?",
                (f"{START.isoformat()} 00:00:01",),
            )
        )
    placed = 0
    for path in sorted((folder / "landing" / "orders" / "order_events").rglob("*.jsonl")):
        for line in read_lines(path):
            verdict, event = classify("orders/order_events", line)
            if verdict != "valid":
                continue
            assert 1 <= len(event["items"]) <= 4
            raw = json.loads(line, parse_float=str)
            amounts = [raw["total_amount"], raw["discount_amount"]]
            amounts += [item["unit_price"] for item in raw["items"]]
            assert all(re.fullmatch(r"\d+\.\d{1,2}", a) for a in amounts), line
            subtotal = sum(cents(i["unit_price"]) * i["quantity"] for i in event["items"])
            discount = 0
            if event["promotion_code"]:
                exact = Decimal(subtotal) * Decimal(str(pct[event["promotion_code"]])) / 100
                discount = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            assert cents(event["discount_amount"]) == discount
            assert cents(event["total_amount"]) == subtotal - discount
            for item in event["items"]:
                if item["product_id"] in unchanged:
                    assert item["unit_price"] == unchanged[item["product_id"]]
            placed += event["event_type"] == "order_placed"
    assert placed > 0
    with closing(sqlite3.connect(services / "inventory.sqlite")) as db:
        mismatched = db.execute(
            "SELECT l.product_id FROM stock_levels l JOIN (SELECT product_id, sum(quantity) AS s"
            " FROM stock_movements GROUP BY product_id) m USING (product_id) WHERE s <> on_hand"
        ).fetchall()
        levels = db.execute("SELECT count(*), min(on_hand) FROM stock_levels").fetchone()
    assert mismatched == [] and levels[0] == 200 and levels[1] >= 0
    with closing(sqlite3.connect(services / "customers.sqlite")) as db:
        count, emails, first_created = db.execute(
            "SELECT count(*), count(DISTINCT email), min(created_at) FROM customers"
        ).fetchone()
        edited = db.execute("SELECT count(*) FROM customers WHERE updated_at > created_at")
        edited = edited.fetchone()[0]
    assert count == emails and count > round(2000 * SCALE) and edited > 0
    assert first_created < START.isoformat()


def test_injected_line_faults_are_classified_as_declared():
    rng = random.Random(3)
    samples = {
        "orders/order_events": {
            "event_id": "e",
            "event_type": "order_placed",
            "occurred_at": "2026-03-01T10:15:30.123456",
            "order_id": "o",
            "customer_id": "c",
            "channel": "web",
            "promotion_code": None,
            "currency": "EUR",
            "total_amount": 10.5,
            "discount_amount": 0.0,
            "items": [{"product_id": "p", "quantity": 1, "unit_price": 10.5}],
        },
        "payments/payment_events": {
            "event_id": "e",
            "event_type": "payment_captured",
            "occurred_at": "2026-03-01T10:15:30.123456",
            "payment_id": "p",
            "order_id": "o",
            "amount": 0.0,
            "currency": "EUR",
            "method": "card",
        },
        "shipping/shipment_events": {
            "event_id": "e",
            "event_type": "shipment_dispatched",
            "occurred_at": "2026-03-01T10:15:30.123456",
            "shipment_id": "s",
            "order_id": "o",
            "carrier": "DHL",
            "units": 2,
        },
        "clickstream/sessions": {
            "event_id": "e",
            "occurred_at": "2026-03-01T10:15:30.123456",
            "session_id": "s",
            "channel": "mobile",
            "customer_id": None,
            "page_views": 3,
            "order_id": None,
        },
    }
    for source, payload in samples.items():
        line = json.dumps(payload)
        assert classify(source, line) == ("valid", payload)
        seen = set()
        for _ in range(200):
            kind, broken = contract_violation(rng, source, payload)
            assert classify(source, broken)[0] == kind
            assert json.loads(broken)["event_id"] != "e"
            seen.add(kind)
            assert classify(source, malformed_line(rng, line))[0] == "malformed"
        assert seen == {"missing_field", "wrong_type", "impossible_value"}
    assert all(classify("clickstream/sessions", g)[0] == "malformed" for g in GARBAGE_LINES)


def test_a_clean_landscape_has_no_faults(tmp_path):
    manifest = simulate(tmp_path / "clean", START, 4, scale=0.02, faults=FaultRates.none())
    for source in EVENT_SOURCES:
        totals = manifest["sources"][source]["totals"]
        assert totals["lines"] == totals["loaded"] > 0
        assert manifest["in_flight"][source] == {}
    assert all(ids == [] for ids in manifest["business_faults"].values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "days must be a positive whole number, got 0"),
        ({"days": 2, "start": None}, "start is required"),
        ({"days": 2, "scale": 0}, "scale must be a number > 0"),
        ({"days": 2, "seed": -1}, "seed must be a whole number >= 0"),
    ],
)
def test_bad_python_input_writes_nothing(tmp_path, kwargs, message):
    target = tmp_path / "new"
    with pytest.raises(LandscapeError, match=message):
        simulate(target, **{"start": START, **kwargs})
    assert not target.exists()


def test_fault_rates_are_checked_and_fixed_by_the_landscape(appended):
    with pytest.raises(LandscapeError, match="late must be a rate between 0 and 0.5"):
        FaultRates(late=2.0)
    folder, *_ = appended
    files = tree(folder)
    with pytest.raises(LandscapeError, match="faults cannot change when appending"):
        simulate(folder, None, 1, append=True, faults=FaultRates.none())
    with pytest.raises(LandscapeError, match="seed cannot change when appending"):
        simulate(folder, None, 1, append=True, seed=99)
    assert tree(folder) == files


def test_append_refuses_to_build_on_an_interrupted_run(tmp_path):
    folder = tmp_path / "data"
    simulate(folder, START, 2, scale=0.02)
    stale = (folder / "landscape.json").read_bytes()
    simulate(folder, None, 1, append=True)
    (folder / "landscape.json").write_bytes(stale)  # as if day 3 died before its manifest
    files = tree(folder)
    with pytest.raises(LandscapeError, match="a run was interrupted"):
        simulate(folder, None, 1, append=True)
    assert tree(folder) == files


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-03-01", "--days", "0"], "--days must be a positive whole number, got 0"),
        (["--start", "2026-03-01", "--days", "two"], "--days must be a positive whole number"),
        (["--start", "2026-02-30", "--days", "2"], "--start must be a date like 2026-03-01"),
        (["--days", "2"], "--start is required"),
        (["--append", "--days", "2"], "--append needs an existing landscape"),
    ],
)
def test_cli_refuses_bad_input_and_writes_nothing(tmp_path, args, message):
    target = tmp_path / "new"
    result = run_cli("simulate", *args, "--data-dir", str(target))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert not target.exists()


def test_cli_refuses_a_data_dir_it_cannot_create(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli(
        "simulate", "--start", "2026-03-01", "--days", "1", "--data-dir", str(blocker / "data")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --data-dir {blocker / 'data'} cannot be used: {blocker} is not a folder"
    ]
    assert blocker.read_text() == "not a folder"


def test_cli_generates_appends_and_protects_a_landscape(tmp_path):
    target = tmp_path / "data"
    common = ["--data-dir", str(target)]
    first = run_cli("simulate", "--start", "2026-03-01", "--days", "2", "--scale", "0.02", *common)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip().splitlines()) == 1 and "2 days" in first.stdout
    files = tree(target)
    again = run_cli("simulate", "--start", "2026-03-01", "--days", "2", *common)
    assert again.returncode == 2 and "--append" in again.stderr
    assert tree(target) == files
    more = run_cli("simulate", "--append", "--days", "1", *common)
    assert more.returncode == 0, more.stderr
    manifest = json.loads((target / "landscape.json").read_text())
    assert (manifest["days"], manifest["end"], manifest["scale"]) == (3, "2026-03-04", 0.02)
    fresh = run_cli(
        "simulate", "--start", "2026-04-01", "--days", "1", "--scale", "0.02", "--replace", *common
    )
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads((target / "landscape.json").read_text())["start"] == "2026-04-01"
    assert not list((target / "landing").rglob("dt=2026-03-01"))
