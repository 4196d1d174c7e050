"""Hostile input: every bad record is quarantined with a reason or refused with a clear error,
nothing in the input is ever executed as SQL, and the accounting still balances.

No mocks: real landing files (bytes written by hand, symlinks included), the real extractors
and the real Dagster asset with its `rows_accounted_for` check, over tiny private data folders.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.extract.contract import MAX_RECORD_BYTES
from batch_platform.extract.database import DatabaseSourceError, extract_database
from batch_platform.extract.events import UTF8_BOM, extract_events
from batch_platform.extract.factory import ROWS_ACCOUNTED_FOR, build_extract_asset
from batch_platform.extract.lake import (
    SCHEMA_DRIFT_LISTED,
    PartitionStats,
    partition_path,
    schema_drift_count,
    schema_drift_report,
)
from batch_platform.partitions import partition_day
from batch_platform.paths import DATA_DIR_ENV
from batch_platform.registry import RegistryError, load_registry

DAY = date(2026, 3, 2)
FOLDER = f"orders/order_events/dt={DAY.isoformat()}"
SQL = "x'); DROP TABLE input; -- \" ; DELETE FROM checked; /*"


@pytest.fixture(scope="module")
def specs():
    return {spec.path: spec for spec in load_registry(load_manifest())}


def event(number: int, **changes) -> dict:
    record = {
        "event_id": f"e{number}",
        "event_type": "order_placed",
        "occurred_at": f"2026-03-02T10:00:{number:02d}",
        "order_id": f"o{number}",
        "customer_id": f"c{number}",
        "channel": "web",
        "promotion_code": None,
        "currency": "EUR",
        "total_amount": 10.5,
        "discount_amount": 0,
        "items": [{"product_id": "p1", "quantity": 1, "unit_price": 10.5}],
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def line(record) -> bytes:
    return json.dumps(record).encode() + b"\n"


def write(folder: Path, name: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


def read(data: Path, spec, zone: str) -> list[dict]:
    # ParquetFile, not read_table: no hive `dt` column inferred from the folder name.
    return pq.ParquetFile(partition_path(data / "lake", zone, spec, DAY)).read().to_pylist()


HUGE = "z" * (10 * 1024 * 1024)

# (file, content, {line number: expected reason prefix}); lines not listed are loaded, or
# duplicates where noted in the test.
HOSTILE_FILES = [
    ("a-good.jsonl", line(event(1)) + line(event(2)), {}),
    # The relay delivers at least once: e1 again, in a later file; e3 is new.
    ("b-redelivered.jsonl", line(event(1, currency="USD")) + line(event(3)), {}),
    (
        "c-malformed.jsonl",
        b'{"event_id": "m1", "event_type": \n[1, 2, 3]\n"just a string"\n{"a": 1}}\n'
        + b"[" * 200_000
        + b"\n",
        {
            1: "malformed JSON",
            2: "not a JSON object",
            3: "not a JSON object",
            4: "malformed JSON",
            5: "malformed JSON",
        },
    ),
    (
        "d-truncated.jsonl",
        line(event(4)) + line(event(5))[:40],  # the last line cut mid-record, no newline
        {2: "malformed JSON"},
    ),
    (
        "e-not-utf8.jsonl",
        line(event(6)) + b'{"event_id": "bad\xff\xfe", "x": "\xc3\x28"}\n' + line(event(7)),
        {2: "malformed JSON"},
    ),
    (
        "f-huge.jsonl",
        line(event(8, promotion_code=HUGE)) + b"{" + HUGE.encode() + b"\n",
        {1: f"record larger than {MAX_RECORD_BYTES} bytes", 2: "record larger than"},
    ),
    ("g-empty.jsonl", b"", {}),
    (
        "h-types.jsonl",
        b"".join(
            line(r)
            for r in [
                event(20, total_amount="lots"),
                event(21, items="not a list"),
                event(22, occurred_at="yesterday"),
                event(23, customer_id=...),
                event(24, channel="fax"),
                event(25, total_amount=-5),
                event(26, event_id=None),
                event(27, discount_amount=[1, 2]),
            ]
        ),
        {
            1: "total_amount: expected DECIMAL(12,2)",
            2: "items: expected STRUCT",
            3: "occurred_at: expected TIMESTAMP",
            4: "missing required field customer_id",
            5: "channel: not an accepted value",
            6: "total_amount: must be >= 0",
            7: "missing required field event_id",
            8: "discount_amount: expected DECIMAL(12,2)",
        },
    ),
    (
        "i-time.jsonl",
        b"".join(
            line(event(30, occurred_at=t))
            for t in [
                "2999-12-31T23:59:59",  # far in the future
                "1970-01-01T00:00:00",  # long before the first partition
                "2026-03-01T23:59:59.999999",  # the day before
                "2026-03-03T00:00:00",  # the next day: the window is half-open
                "294277-01-01T00:00:00",  # beyond what a timestamp holds
            ]
        ),
        {
            1: "occurred_at: outside the partition window [2026-03-02, 2026-03-03)",
            2: "occurred_at: outside the partition window",
            3: "occurred_at: outside the partition window",
            4: "occurred_at: outside the partition window",
            5: "occurred_at: expected TIMESTAMP",
        },
    ),
    # SQL in every string a record carries: stored as text, never run.
    ("j-sql.jsonl", line(event(40, order_id=SQL, customer_id=SQL, promotion_code=SQL)), {}),
    ("k-nul.jsonl", b'{"event_id": "n\x00ul"}\n', {1: "malformed JSON"}),
]
LOADED = {"e1", "e2", "e3", "e4", "e6", "e7", "e40"}


def extract_day(spec, instance=None) -> tuple[dg.ExecuteInProcessResult, dict]:
    """Materialise the real extract asset for DAY; check that `rows_accounted_for` passed and
    return the run's result and the materialisation's metadata values."""
    result = dg.materialize(
        [build_extract_asset(spec, platform_days)],
        partition_key=DAY.isoformat(),
        instance=instance or dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == ROWS_ACCOUNTED_FOR and check.passed
    assert check.metadata["unaccounted_by_day"].value == {}
    [materialization] = result.get_asset_materialization_events()
    return result, {k: v.value for k, v in materialization.materialization.metadata.items()}


def test_hostile_event_files_are_quarantined_with_reasons_and_accounted_for(
    specs, tmp_path, monkeypatch
):
    spec = specs["orders/order_events"]
    folder = tmp_path / "landing" / FOLDER
    for name, content, _ in HOSTILE_FILES:
        write(folder, name, content)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))

    result, metadata = extract_day(spec)

    loaded = read(tmp_path, spec, "raw")
    quarantined = read(tmp_path, spec, "quarantine")
    expected = {
        (f"{FOLDER}/{name}", number): reason
        for name, _, reasons in HOSTILE_FILES
        for number, reason in reasons.items()
    }
    found = {(row["origin"], row["position"]): row["reason"] for row in quarantined}
    assert found.keys() == expected.keys()
    for where, reason in expected.items():
        assert found[where].startswith(reason), (where, found[where])
    assert {row["event_id"] for row in loaded} == LOADED
    # The first delivery of e1 wins, whatever the later copy says.
    assert next(r for r in loaded if r["event_id"] == "e1")["currency"] == "EUR"
    assert next(r for r in loaded if r["event_id"] == "e40")["order_id"] == SQL

    lines = sum(1 for _, content, _ in HOSTILE_FILES for part in content.split(b"\n") if part)
    assert metadata["rows_read"] == lines
    assert metadata["rows_loaded"] == len(LOADED)
    assert metadata["rows_duplicate"] == 1
    assert metadata["rows_quarantined"] == len(expected)
    assert lines == len(loaded) + 1 + len(quarantined)
    assert metadata["input_files"] == len(HOSTILE_FILES)
    # Nothing is lost: the oversized record is kept whole in the quarantine, the undecodable
    # one with its bytes spelled out.
    huge = found_raw(quarantined, f"{FOLDER}/f-huge.jsonl", 1)
    assert json.loads(huge)["promotion_code"] == HUGE
    assert "\\xff\\xfe" in found_raw(quarantined, f"{FOLDER}/e-not-utf8.jsonl", 2)


def found_raw(rows: list[dict], origin: str, position: int) -> str:
    return next(r["raw"] for r in rows if r["origin"] == origin and r["position"] == position)


def test_a_day_of_only_empty_or_blank_files_writes_an_empty_partition(specs, tmp_path):
    spec = specs["orders/order_events"]
    folder = tmp_path / "landing" / FOLDER
    write(folder, "empty.jsonl", b"")
    write(folder, "blank.jsonl", b"\n\n   \n")
    stats = extract_events(spec, DAY, tmp_path)
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (0, 0, 0)
    assert stats.input_files == 2
    assert read(tmp_path, spec, "raw") == read(tmp_path, spec, "quarantine") == []


def test_blank_lines_are_skipped_and_every_other_line_keeps_its_number(specs, tmp_path):
    """Empty lines and lines of JSON whitespace only (space, tab) are no records; a record
    after spaces is one, and a line of other whitespace (a form feed) is a malformed record,
    quarantined at its own line number."""
    spec = specs["orders/order_events"]
    content = b"\n   \n\t\n" + b"  " + line(event(1)) + b"\x0c\n" + line(event(2)) + b" \t\n"
    write(tmp_path / "landing" / FOLDER, "gaps.jsonl", content)
    stats = extract_events(spec, DAY, tmp_path)
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (3, 2, 1)
    [quarantined] = read(tmp_path, spec, "quarantine")
    assert (quarantined["position"], quarantined["reason"]) == (5, "malformed JSON")
    assert {r["event_id"] for r in read(tmp_path, spec, "raw")} == {"e1", "e2"}


# --- A value is loaded as what it says or quarantined: never approximated to fit -------------


def extract_through_dagster(spec, tmp_path, monkeypatch, files: dict[str, bytes]):
    """Land `files` in the day's folder of `spec`, materialise the real extract asset, check
    that `rows_accounted_for` passed, and return (metadata, loaded rows, quarantine by
    (file, line), the run's log messages)."""
    folder = tmp_path / "landing" / spec.options["landing"].replace("{date}", DAY.isoformat())
    for name, content in files.items():
        write(folder.parent, name, content)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    result, metadata = extract_day(spec, instance)
    loaded = {r[spec.primary_key]: r for r in read(tmp_path, spec, "raw")}
    quarantined = {
        (Path(r["origin"]).name, r["position"]): r for r in read(tmp_path, spec, "quarantine")
    }
    assert metadata["rows_read"] == len(loaded) + metadata["rows_duplicate"] + len(quarantined)
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    return metadata, loaded, quarantined, messages


def reasons(quarantined: dict) -> dict:
    return {where: row["reason"] for where, row in quarantined.items()}


def test_a_json_object_or_array_in_a_text_column_is_quarantined_not_loaded_as_its_text(
    specs, tmp_path, monkeypatch
):
    """`{"id": "e1"}` is not an event id. A string that merely looks like JSON is text."""
    spec = specs["orders/order_events"]
    looks_like_json = '{"looks": ["like", "json"]}'
    content = b"".join(
        line(r)
        for r in [
            event(1, event_id={"id": "e1"}),
            event(2, customer_id=["c", 2]),
            event(3, promotion_code={}),
            event(4, promotion_code=looks_like_json, order_id="[o4]"),
        ]
    )
    metadata, loaded, quarantined, _ = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"objects.jsonl": content}
    )
    assert reasons(quarantined) == {
        ("objects.jsonl", 1): "event_id: expected VARCHAR, got a JSON object",
        ("objects.jsonl", 2): "customer_id: expected VARCHAR, got a JSON array",
        ("objects.jsonl", 3): "promotion_code: expected VARCHAR, got a JSON object",
    }
    assert loaded.keys() == {"e4"}
    assert (loaded["e4"]["promotion_code"], loaded["e4"]["order_id"]) == (looks_like_json, "[o4]")
    assert metadata["quarantine_reasons"] == {
        "customer_id: expected VARCHAR": 1,
        "event_id: expected VARCHAR": 1,
        "promotion_code: expected VARCHAR": 1,
    }


ITEMS = "STRUCT(product_id VARCHAR, quantity INTEGER, unit_price DECIMAL(12,2))[]"


def item(quantity=1, unit_price=10.5) -> list[dict]:
    return [{"product_id": "p1", "quantity": quantity, "unit_price": unit_price}]


def test_a_number_that_would_be_rounded_to_fit_is_quarantined_and_exact_ones_load(
    specs, tmp_path, monkeypatch
):
    """1.9 is not an INTEGER and 12.345 not a DECIMAL(12,2): a cast would round them. A value
    the type holds exactly loads, however it is written: 2.0 and 2e0 are the integer 2, 12.3
    is 12.30."""
    spec = specs["orders/order_events"]
    rounded = {
        1: event(1, items=item(quantity=1.9)),
        2: event(2, items=item(unit_price=10.555)),
        3: event(3, total_amount=12.345),
        4: event(4, discount_amount="0.001"),
        5: event(5, items=[*item(), *item(quantity=2.5)]),
    }
    exact = {
        6: event(6, items=item(quantity=2.0, unit_price=10), total_amount=12.3),
        7: event(7, items=item(quantity=2e0, unit_price=1e1), total_amount="12.30"),
        8: event(8, items=item(quantity=-3), total_amount=99999.99),
    }
    content = b"".join(line(r) for r in {**rounded, **exact}.values())
    _, loaded, quarantined, _ = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"numbers.jsonl": content}
    )
    rounded_items = f"items: would be rounded to fit {ITEMS}, got "
    two_items = (  # a reason quotes the first 80 characters of the value
        '[{"product_id":"p1","quantity":1,"unit_price":10.5},'
        '{"product_id":"p1","quantity":2.5,"unit_price":10.5}]'
    )
    assert reasons(quarantined) == {
        ("numbers.jsonl", 1): rounded_items
        + '[{"product_id":"p1","quantity":1.9,"unit_price":10.5}]',
        ("numbers.jsonl", 2): rounded_items
        + '[{"product_id":"p1","quantity":1,"unit_price":10.555}]',
        ("numbers.jsonl", 3): "total_amount: would be rounded to fit DECIMAL(12,2), got 12.345",
        ("numbers.jsonl", 4): "discount_amount: would be rounded to fit DECIMAL(12,2), got 0.001",
        ("numbers.jsonl", 5): rounded_items + two_items[:80],
    }
    assert loaded.keys() == {"e6", "e7", "e8"}
    assert [(i["quantity"], i["unit_price"]) for i in loaded["e6"]["items"]] == [(2, Decimal("10"))]
    assert [(i["quantity"], i["unit_price"]) for i in loaded["e7"]["items"]] == [(2, Decimal("10"))]
    assert loaded["e6"]["total_amount"] == loaded["e7"]["total_amount"] == Decimal("12.30")
    assert loaded["e8"]["items"][0]["quantity"] == -3

    sessions = specs["clickstream/sessions"]
    session = {
        "occurred_at": "2026-03-02T09:00:00",
        "session_id": "s1",
        "channel": "web",
        "customer_id": None,
        "order_id": None,
    }
    clicks = b"".join(
        line({**session, "event_id": f"s{views}", "page_views": views})
        for views in (2.5, 1.0000001, 3.0, 4)
    )
    _, loaded, quarantined, _ = extract_through_dagster(
        sessions, tmp_path / "clicks", monkeypatch, {"clicks.jsonl": clicks}
    )
    assert reasons(quarantined) == {
        ("clicks.jsonl", 1): "page_views: would be rounded to fit INTEGER, got 2.5",
        ("clicks.jsonl", 2): "page_views: would be rounded to fit INTEGER, got 1.0000001",
    }
    assert {k: r["page_views"] for k, r in loaded.items()} == {"s3.0": 3, "s4": 4}


def test_a_timestamp_with_an_offset_is_the_instant_it_names_kept_in_utc(
    specs, tmp_path, monkeypatch
):
    """23:30 at -03:00 on the 2nd is 02:30 UTC on the 3rd: outside the 2nd's partition, however
    it is filed. A time without an offset is UTC, as before."""
    spec = specs["orders/order_events"]
    times = {
        1: "2026-03-02T23:30:00-03:00",  # 2026-03-03 02:30 UTC: the next day
        2: "2026-03-02T01:30:00+02:00",  # 2026-03-01 23:30 UTC: the day before
        3: "2026-03-03T01:00:00+02:00",  # 2026-03-02 23:00 UTC: this day, filed by its local day
        4: "2026-03-02T10:00:00Z",
        5: "2026-03-02T10:00:05.5+00:00",
        6: "2026-03-02T10:00:06",  # no offset: UTC
        7: "2026-03-02 10:00:07 America/Sao_Paulo",  # a zone name: 13:00:07 UTC
    }
    content = b"".join(line(event(n, occurred_at=t)) for n, t in times.items())
    metadata, loaded, quarantined, _ = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"offsets.jsonl": content}
    )
    window = "occurred_at: outside the partition window [2026-03-02, 2026-03-03), got "
    assert reasons(quarantined) == {
        ("offsets.jsonl", 1): window + "2026-03-03 02:30:00",
        ("offsets.jsonl", 2): window + "2026-03-01 23:30:00",
    }
    assert {k: r["occurred_at"] for k, r in loaded.items()} == {
        "e3": datetime(2026, 3, 2, 23, 0),
        "e4": datetime(2026, 3, 2, 10, 0),
        "e5": datetime(2026, 3, 2, 10, 0, 5, 500000),
        "e6": datetime(2026, 3, 2, 10, 0, 6),
        "e7": datetime(2026, 3, 2, 13, 0, 7),
    }
    assert metadata["watermark"] == "2026-03-02T23:00:00"


# The same lines, once in a UTF-8 file and once in a file that is not UTF-8 (one more line of
# Latin-1 bytes): which lines are records and what they hold must not depend on it.
CRLF_CONTENT = (
    UTF8_BOM
    + json.dumps(event(1)).encode()
    + b"\r\n"  # line 1: the first record, after the byte order mark
    + b"\r\n"  # 2: a blank CRLF line
    + b"  \t \r\n"  # 3: blank too
    + json.dumps(event(2, promotion_code="a\rb")).encode()
    + b"\r\r\n"  # 4: a record; the escaped CR inside it is data
    + b"\x0c\r\n"  # 5: a form feed is not JSON whitespace: a malformed record
    + b"\r"  # 6: a last line of a lone CR, no LF: blank
)


@pytest.mark.parametrize("encoding", ["utf-8", "not utf-8"])
def test_byte_order_marks_and_crlf_lines_follow_one_rule_in_every_file(
    specs, tmp_path, monkeypatch, encoding
):
    spec = specs["orders/order_events"]
    content = CRLF_CONTENT
    expected = {("crlf.jsonl", 5): "malformed JSON"}
    if encoding == "not utf-8":
        content += b'\n{"event_id": "caf\xe9"}\r\n'
        expected[("crlf.jsonl", 7)] = "malformed JSON"
    metadata, loaded, quarantined, _ = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"crlf.jsonl": content}
    )
    assert reasons(quarantined) == expected
    assert loaded.keys() == {"e1", "e2"}
    assert loaded["e2"]["promotion_code"] == "a\rb"
    assert metadata["rows_read"] == 2 + len(expected)
    # A quarantined line is kept without its line ending.
    assert quarantined[("crlf.jsonl", 5)]["raw"] == "\x0c"
    if encoding == "not utf-8":
        assert quarantined[("crlf.jsonl", 7)]["raw"] == 'invalid UTF-8: {"event_id": "caf\\xe9"}'


def test_an_oversized_line_that_is_not_utf8_is_quarantined_for_its_size_and_kept_whole(
    specs, tmp_path, monkeypatch
):
    spec = specs["orders/order_events"]
    padding = b"\xff" + b"z" * MAX_RECORD_BYTES
    oversized = json.dumps(event(2, promotion_code="PAD")).encode().replace(b"PAD", padding)
    content = line(event(1)) + oversized + b"\r\n" + line(event(3))
    metadata, loaded, quarantined, _ = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"big.jsonl": content}
    )
    kept = "invalid UTF-8: " + repr(oversized)[2:-1]
    assert reasons(quarantined) == {
        ("big.jsonl", 2): f"record larger than {MAX_RECORD_BYTES} bytes, got {len(kept)}"
    }
    assert quarantined[("big.jsonl", 2)]["raw"] == kept
    assert loaded.keys() == {"e1", "e3"}
    assert metadata["rows_read"] == 3


def test_schema_drift_of_many_unknown_fields_is_reported_as_a_count_and_the_first_few(
    specs, tmp_path, monkeypatch
):
    """200,000 distinct unknown keys (1,000 in each of 200 records): the metadata and the
    warning name 20 of them and count the rest, instead of listing them all."""
    spec = specs["orders/order_events"]
    content = b"".join(
        line(
            {
                **event(n, occurred_at=f"2026-03-02T10:{n // 60:02d}:{n % 60:02d}"),
                **{f"k{n:03d}_{k:03d}": k for k in range(1000)},
            }
        )
        for n in range(200)
    )
    metadata, loaded, _, messages = extract_through_dagster(
        spec, tmp_path, monkeypatch, {"drift.jsonl": content}
    )
    assert len(loaded) == 200
    listed = [f"k000_{k:03d}" for k in range(SCHEMA_DRIFT_LISTED)]
    more = "... and 199980 more (200000 fields not in the contract)"
    assert metadata["schema_drift"] == [*listed, more]
    [warning] = [m for m in messages if "schema drift" in m]
    assert warning.endswith(", ".join([*listed, more]))
    assert len(warning) < 1000


def test_schema_drift_of_several_days_combines_without_growing(specs):
    def day(names: list[str]) -> PartitionStats:
        return PartitionStats(schema_drift=schema_drift_report(names))

    assert day(["b", "a", "b"]).schema_drift == ["a", "b"]
    few = day(["a", "b"]).combine(day(["b", "c"]))
    assert few.schema_drift == ["a", "b", "c"]
    assert schema_drift_count(few.schema_drift) == 3
    many = day([f"x{i:02d}" for i in range(30)]).combine(day([f"y{i:02d}" for i in range(25)]))
    assert many.schema_drift == [
        *[f"x{i:02d}" for i in range(20)],
        "... and 20 more (at least 40 fields not in the contract)",
    ]
    assert schema_drift_count(many.schema_drift) == 40  # 40 names seen, others hidden
    assert len(PartitionStats().combine(many).schema_drift) == SCHEMA_DRIFT_LISTED + 1


def test_landing_names_that_climb_or_lead_out_of_the_landing_folder_are_never_read(specs, tmp_path):
    spec = specs["orders/order_events"]
    landing = tmp_path / "landing"
    folder = landing / FOLDER
    outside = tmp_path / "elsewhere"
    secret = write(outside, "secret.jsonl", line(event(90)))
    write(folder, "good.jsonl", line(event(1)))
    (folder / "link-out.jsonl").symlink_to(secret)  # relative name, target outside
    (folder / "link-abs.jsonl").symlink_to("/etc/hostname")  # absolute target
    (folder / "link-up.jsonl").symlink_to(Path("..", "..", "..", "..", "elsewhere", "secret.jsonl"))
    write(folder, "..hidden.jsonl", line(event(91)))
    write(folder, "evil\n.jsonl", line(event(92)))
    (folder / "subdir.jsonl").mkdir()
    # A whole day folder that is a symlink out of the landing root.
    other = date(2026, 3, 3)
    (landing / f"orders/order_events/dt={other}").symlink_to(outside)
    before = sorted((p.name, p.read_bytes()) for p in outside.iterdir())

    stats = extract_events(spec, DAY, tmp_path)

    assert stats.rows_read == stats.rows_loaded == 1
    assert {row["event_id"] for row in read(tmp_path, spec, "raw")} == {"e1"}
    skipped = dict(s.split(": ", 1) for s in stats.skipped_inputs)
    assert skipped == {
        f"{FOLDER}/link-out.jsonl": "resolves outside the landing folder",
        f"{FOLDER}/link-abs.jsonl": "resolves outside the landing folder",
        f"{FOLDER}/link-up.jsonl": "resolves outside the landing folder",
        f"{FOLDER}/..hidden.jsonl": "file name outside the expected pattern",
        f"{FOLDER}/evil\n.jsonl": "file name outside the expected pattern",
        f"{FOLDER}/subdir.jsonl": "not a regular file",
    }
    other_stats = extract_events(spec, other, tmp_path)
    assert other_stats.rows_read == 0
    assert other_stats.skipped_inputs == [
        f"orders/order_events/dt={other}/secret.jsonl: resolves outside the landing folder"
    ]
    assert sorted((p.name, p.read_bytes()) for p in outside.iterdir()) == before


# --- SQL in registry entries, partition keys and configuration: refused or inert ---------


def _entry(unique_id: str) -> dict:
    source = copy.deepcopy(load_manifest()["sources"][unique_id])
    source["meta"] = source["config"]["meta"] = copy.deepcopy(source["config"]["meta"])
    return source


ORDERS = "source.batch_platform.orders.order_events"
CUSTOMERS = "source.batch_platform.customers.customers"
CATALOG = "source.batch_platform.catalog.products"


@pytest.mark.parametrize(
    ("unique_id", "mutate", "complaint"),
    [
        (ORDERS, lambda s: s.update(name="order_events; DROP TABLE x"), "table name (entity)"),
        (ORDERS, lambda s: s.update(source_name="orders'--"), "source name (service)"),
        (ORDERS, lambda s: s["columns"]["event_id"].update(name='id" ; --'), "a column name"),
        (
            ORDERS,
            lambda s: s["columns"]["total_amount"].update(data_type="int); DROP TABLE input; --"),
            "is not a DuckDB type",
        ),
        (
            ORDERS,
            lambda s: s["columns"]["total_amount"].update(data_type="varchar -- x"),
            "is not a DuckDB type",
        ),
        (
            ORDERS,
            lambda s: s["meta"]["extract"].update(landing="orders/{date}/x';--.jsonl"),
            "relative path pattern",
        ),
        (
            ORDERS,
            lambda s: s["meta"]["extract"].update(event_time="occurred_at; --"),
            "event_time must be a lower-case identifier",
        ),
        (
            ORDERS,
            lambda s: s["columns"]["total_amount"]["config"]["meta"].update(min="0; DROP"),
            "min must be a number",
        ),
        (
            CUSTOMERS,
            lambda s: s["meta"]["extract"].update(table="customers; DROP TABLE customers"),
            "meta.extract.table must be a lower-case identifier",
        ),
        (
            CUSTOMERS,
            lambda s: s["meta"]["extract"].update(connection_env="X; rm -rf /"),
            "connection_env",
        ),
        (
            CATALOG,
            lambda s: s["meta"]["extract"].update(path="/products?x=';DROP"),
            "meta.extract.path like /products",
        ),
        (CATALOG, lambda s: s["meta"]["extract"].update(access="sql"), "access must be one of"),
    ],
)
def test_registry_entries_carrying_sql_are_refused_naming_the_entry(unique_id, mutate, complaint):
    source = _entry(unique_id)
    mutate(source)
    manifest = {"sources": {**load_manifest()["sources"], unique_id: source}}
    with pytest.raises(RegistryError) as raised:
        load_registry(manifest)
    message = str(raised.value)
    assert message.startswith(f"registry entry '{source['source_name']}.{source['name']}': ")
    assert complaint in message and "\n" not in message


def test_a_declared_type_reaches_sql_only_as_duckdb_spells_it():
    source = _entry(ORDERS)
    source["columns"]["total_amount"]["data_type"] = "decimal(12,2) /* ; DROP TABLE input */"
    manifest = {"sources": {ORDERS: source}}
    [spec] = load_registry(manifest)
    assert spec.column("total_amount").data_type == "DECIMAL(12,2)"  # the comment is gone


def test_sql_in_accepted_values_descriptions_and_data_is_only_ever_data(specs, tmp_path):
    """Values the registry allows to hold anything are bound parameters, never SQL text."""
    spec = specs["orders/order_events"]
    columns = tuple(
        replace(c, accepted_values=(*c.accepted_values, SQL), description=SQL)
        if c.name == "channel"
        else c
        for c in spec.columns
    )
    spec = replace(spec, columns=columns, description=SQL)
    folder = tmp_path / "landing" / FOLDER
    write(folder, "sql.jsonl", line(event(1, channel=SQL, order_id=SQL)) + line(event(2)))
    write(folder, "bad.jsonl", line(event(3, channel=SQL + "!")))

    stats = extract_events(spec, DAY, tmp_path)

    assert (stats.rows_loaded, stats.rows_quarantined) == (2, 1)
    rows = {r["event_id"]: r for r in read(tmp_path, spec, "raw")}
    assert (rows["e1"]["channel"], rows["e1"]["order_id"]) == (SQL, SQL)
    [rejected] = read(tmp_path, spec, "quarantine")
    assert rejected["reason"] == f"channel: not an accepted value, got {SQL}!"


@pytest.mark.parametrize(
    "key", ["2026-03-02'; DROP TABLE x; --", "2026-03-02 OR 1=1", "2026-03-02/*", "../2026-03-02"]
)
def test_partition_keys_carrying_sql_are_refused_before_anything_runs(
    specs, tmp_path, monkeypatch, key
):
    spec = specs["orders/order_events"]
    write(tmp_path / "landing" / FOLDER, "good.jsonl", line(event(1)))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="partition key must be a day like 2026-03-01"):
        partition_day(key)
    with pytest.raises(dg.DagsterUnknownPartitionError, match="Could not find a partition"):
        dg.materialize([build_extract_asset(spec, platform_days)], partition_key=key)
    assert not (tmp_path / "lake").exists()


def test_configuration_values_carrying_sql_fail_clearly_and_write_nothing(
    specs, tmp_path, monkeypatch
):
    # A data folder with a quote: the lake path could not be a COPY literal, so it is refused.
    data = tmp_path / "it's; DROP TABLE input; --"
    write(data / "landing" / FOLDER, "good.jsonl", line(event(1)))
    with pytest.raises(ValueError, match="lake path must not contain a quote"):
        extract_events(specs["orders/order_events"], DAY, data)
    assert not (data / "lake").exists()

    # A connection URL with SQL in it is a path to a file that does not exist, nothing more.
    services = tmp_path / "services"
    services.mkdir()
    with sqlite3.connect(services / "customers.sqlite") as db:
        db.execute("CREATE TABLE customers (customer_id TEXT)")
    hostile = f"sqlite:///{services}/customers.sqlite'; DROP TABLE customers; --"
    monkeypatch.setenv("CUSTOMERS_DB_URL", hostile)
    with pytest.raises(DatabaseSourceError, match="^customers/customers: cannot connect.*no datab"):
        extract_database(specs["customers/customers"], DAY, tmp_path)
    with sqlite3.connect(services / "customers.sqlite") as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone() == (0,)
