"""How fast, and in how much memory, the database access method extracts one big day.

    python -m benchmarks.run --only extract_database       # as part of the harness
    python -m benchmarks.bench_database_extract [--rows 5000000]   # on its own, one JSON line

Builds a SQLite database whose `stock_movements` table matches the inventory contract, with
every row in one day, then runs in two fresh subprocesses, which report their own peak RSS
(`harness.peak_rss_bytes`):

- the platform's `extract_database` for that day (contract check, dedup, lake + quarantine);
- a baseline: bare ADBC `fetch_arrow_table()` of the same query + `pyarrow.parquet.write_table`,
  the least work that produces a Parquet file, holding the whole result in memory;
- the peer: dlt's `sql_table` source loading the same day's window into Parquet through its
  filesystem destination, under the contract (`benchmarks/dlt_peer.py`), when dlt is installed.

The target is an extract peak under 1 GiB at 5 million rows: the extract streams, so its peak
must not grow with the table the way the baseline's does. The time ratio to the baseline is
reported for information: the extract does more (checks, quarantine, atomic replace) and the
baseline buys its speed with memory. The throughput ratio to dlt has a target of >= 1.0x
(ahead of the peer); its peak RSS next to dlt's is for information.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sqlite3
import tempfile
import time
from datetime import date
from pathlib import Path

DAY = date(2026, 3, 2)
TARGET_PEAK_BYTES = 1 << 30
PEER_TARGET_RATIO = 1.0
# Rows per batch for the dlt peer: the platform's own Arrow batch size.
PEER_CHUNK_ROWS = 65_536
SOURCE = "inventory__stock_movements"
NAME = "extract_database"
TITLE = "Extract throughput and memory: database (inventory/stock_movements)"

# Every row falls in DAY; a few per thousand break the contract so the quarantine path runs
# too: an unknown reason (i % 997 = 0) and a non-numeric quantity (i % 991 = 0).
_GENERATE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
INSERT INTO stock_movements
SELECT 'm' || i,
       'p' || (i % 5000),
       CASE WHEN i % 3 = 0 THEN 'o' || (i / 3) END,
       CASE WHEN i % 991 = 0 THEN 'n/a' WHEN i % 3 = 0 THEN -1 - i % 4 ELSE 1 + i % 40 END,
       CASE WHEN i % 997 = 0 THEN 'theft' WHEN i % 3 = 0 THEN 'sale'
            WHEN i % 3 = 1 THEN 'restock' ELSE 'adjustment' END,
       ts,
       ts
FROM (SELECT i, printf('2026-03-02 %02d:%02d:%02d.%06d', s / 3600, s / 60 % 60, s % 60,
                       i % 1000000) AS ts
      FROM (SELECT i, i * 86399 / :rows AS s FROM n))
"""


def generate(path: Path, rows: int) -> float:
    """Fill the SQLite table in SQL (a recursive CTE), not a Python loop; return seconds."""
    started = time.perf_counter()
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(
            "CREATE TABLE stock_movements (movement_id TEXT, product_id TEXT, order_id TEXT, "
            "quantity INTEGER, reason TEXT, occurred_at TEXT, updated_at TEXT)"
        )
        con.execute(_GENERATE, {"rows": rows})
    return time.perf_counter() - started


def _child_extract(spec_file: Path, data_dir: Path) -> dict:
    from batch_platform.extract.database import extract_database
    from benchmarks.harness import peak_rss_bytes

    spec = pickle.loads(spec_file.read_bytes())
    floor = peak_rss_bytes()  # the interpreter with its imports, before any row is read
    started = time.perf_counter()
    stats = extract_database(spec, DAY, data_dir)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_bytes": peak_rss_bytes(),
        "floor_rss_bytes": floor,
        "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded,
        "rows_quarantined": stats.rows_quarantined,
        "bytes_read": stats.bytes_read,
    }


def _child_baseline(spec_file: Path, data_dir: Path) -> dict:
    import adbc_driver_sqlite.dbapi
    import pyarrow.parquet as pq

    from batch_platform.extract.contract import quote_identifier
    from benchmarks.harness import peak_rss_bytes

    spec = pickle.loads(spec_file.read_bytes())
    columns = ", ".join(quote_identifier(c.name) for c in spec.columns)
    database = data_dir / "services" / "inventory.sqlite"
    started = time.perf_counter()
    with (
        adbc_driver_sqlite.dbapi.connect(f"file:{database}?mode=ro") as con,
        con.cursor() as cursor,
    ):
        # Fixed benchmark identifiers, quoted; the window is bound.
        cursor.execute(
            f"SELECT {columns} FROM stock_movements "  # noqa: S608
            "WHERE updated_at >= ? AND updated_at < ?",
            ("2026-03-02", "2026-03-03"),
        )
        table = cursor.fetch_arrow_table()
    pq.write_table(table, data_dir / "baseline.parquet", compression="zstd")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_read": table.num_rows, "peak_rss_bytes": peak_rss_bytes()}


def _child_dlt(spec_file: Path, data_dir: Path) -> dict:
    import dlt  # noqa: F401, I001  (imports before the floor, as the extract's are)
    import dlt.sources.sql_database  # noqa: F401
    import pydantic  # noqa: F401

    from benchmarks import dlt_peer
    from benchmarks.harness import peak_rss_bytes

    spec = pickle.loads(spec_file.read_bytes())
    floor = peak_rss_bytes()
    database = data_dir / "services" / "inventory.sqlite"
    started = time.perf_counter()
    loaded = dlt_peer.load_database(spec, database, _dlt_work(data_dir), DAY, PEER_CHUNK_ROWS)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_bytes": peak_rss_bytes(),
        "floor_rss_bytes": floor,
        "rows_loaded": loaded["rows"],
    }


def _dlt_work(data_dir: Path) -> Path:
    """dlt's lake and its pipelines folder, beside the benchmark's data folder."""
    return data_dir.parent / "dlt"


def _run_child(role: str, spec_file: Path, data_dir: Path) -> dict:
    """Run one measurement in a fresh interpreter, which reports its own peak RSS."""
    from benchmarks.harness import run_child

    _, output = run_child(
        ["benchmarks.bench_database_extract", "--child", role]
        + ["--spec-file", str(spec_file), "--data-dir", str(data_dir)]
    )
    return output


def _prepare(folder: Path, rows: int) -> tuple[Path, Path, float]:
    """The big SQLite table and the pickled spec the children read; (data dir, spec, seconds)."""
    from batch_platform.dbt_project import load_manifest
    from batch_platform.registry import load_registry

    spec = next(s for s in load_registry(load_manifest()) if s.name == SOURCE)
    data_dir = folder / "data"
    (data_dir / "services").mkdir(parents=True)
    generate_seconds = generate(data_dir / "services" / "inventory.sqlite", rows)
    spec_file = folder / "spec.pickle"
    spec_file.write_bytes(pickle.dumps(spec))
    os.environ.pop(spec.options["connection_env"], None)  # use the registry default
    return data_dir, spec_file, generate_seconds


def run(ctx) -> dict:
    """The harness entry: extract and baseline alternately in fresh processes, repeated."""
    from benchmarks import dlt_peer
    from benchmarks.harness import check, fresh_folder, log, measurement, median_ratio

    rows, repeats = ctx.pick(full=(5_000_000, 2), quick=(100_000, 1))
    log(f"generating {rows:,} stock movements in SQLite")
    data_dir, spec_file, generate_seconds = _prepare(fresh_folder(ctx.work / "db"), rows)
    database = data_dir / "services" / "inventory.sqlite"
    peer = dlt_peer.available()
    roles = ("extract", "baseline", "dlt") if peer else ("extract", "baseline")
    results: dict[str, list[dict]] = {role: [] for role in roles}
    for repeat in range(repeats):
        shift = repeat % len(roles)  # rotate who goes first
        for role in roles[shift:] + roles[:shift]:
            if role == "dlt":
                fresh_folder(_dlt_work(data_dir))  # each load from scratch, untimed
            log(f"repeat {repeat + 1}/{repeats}: {role}")
            results[role].append(_run_child(role, spec_file, data_dir))
    extract, baseline = results["extract"], results["baseline"]
    peers = results.get("dlt", [])
    if peer and any(r["rows_loaded"] != extract[-1]["rows_loaded"] for r in peers):
        # No duplicate keys in this table: dlt's contract drops exactly what the platform
        # quarantines, so both must load the same rows.
        raise AssertionError(
            f"rows loaded: dlt {[r['rows_loaded'] for r in peers]}, platform "
            f"{extract[-1]['rows_loaded']:,} (+ {extract[-1]['rows_quarantined']:,} quarantined)"
        )
    seconds = [r["seconds"] for r in extract]
    base_seconds = [r["seconds"] for r in baseline]
    peaks = [r["peak_rss_bytes"] / 2**20 for r in extract]
    return {
        "parameters": {
            "rows": rows,
            "repeats": repeats,
            "sqlite_mib": round(database.stat().st_size / 2**20, 1),
        },
        "measurements": {
            "extract_seconds": measurement("extract_database, one day", seconds, "s"),
            "baseline_seconds": measurement(
                "bare ADBC fetch_arrow_table -> Parquet (baseline)", base_seconds, "s"
            ),
            "extract_rows_per_second": measurement(
                "extract rows/s", [rows / s for s in seconds], "rows/s", 0
            ),
            "baseline_rows_per_second": measurement(
                "baseline rows/s", [rows / s for s in base_seconds], "rows/s", 0
            ),
            "extract_peak_rss_mib": measurement("extract peak RSS", peaks, "MiB", 0),
            "extract_floor_rss_mib": measurement(
                "  of which the interpreter and imports, before reading",
                [r["floor_rss_bytes"] / 2**20 for r in extract],
                "MiB",
                0,
            ),
            "baseline_peak_rss_mib": measurement(
                "baseline peak RSS", [r["peak_rss_bytes"] / 2**20 for r in baseline], "MiB", 0
            ),
            **(
                {
                    "dlt_seconds": measurement(
                        "dlt sql_table -> filesystem Parquet (peer)",
                        [r["seconds"] for r in peers],
                        "s",
                    ),
                    "dlt_rows_per_second": measurement(
                        "dlt rows/s", [rows / r["seconds"] for r in peers], "rows/s", 0
                    ),
                    "dlt_peak_rss_mib": measurement(
                        "dlt peak RSS", [r["peak_rss_bytes"] / 2**20 for r in peers], "MiB", 0
                    ),
                    "dlt_floor_rss_mib": measurement(
                        "  of which the interpreter and imports, before reading",
                        [r["floor_rss_bytes"] / 2**20 for r in peers],
                        "MiB",
                        0,
                    ),
                }
                if peer
                else {}
            ),
        },
        "checks": [
            check(
                "extract peak RSS",
                max(peaks),
                "largest resident set of the extract process (worst repeat); target < 1 GiB",
                target=TARGET_PEAK_BYTES / 2**20,
                direction="<=",
                unit="MiB",
            ),
            check(
                "extract throughput / bare ADBC read throughput",
                median_ratio(base_seconds, seconds),
                "baseline seconds divided by extract seconds (median of per-repeat ratios)",
            ),
            *(
                [
                    check(
                        "extract throughput / dlt throughput",
                        median_ratio([r["seconds"] for r in peers], seconds),
                        "same rows, same day: dlt seconds divided by extract seconds (median of "
                        "per-repeat ratios)",
                        target=PEER_TARGET_RATIO,
                    ),
                    check(
                        "extract peak RSS / dlt peak RSS",
                        max(peaks) / max(r["peak_rss_bytes"] / 2**20 for r in peers),
                        "worst repeat of each, in fresh processes",
                        direction="<=",
                    ),
                ]
                if peer
                else []
            ),
        ],
        "notes": [] if peer else [dlt_peer.MISSING],
        "info": {
            "generate_seconds": round(generate_seconds, 2),
            "rows_loaded": extract[-1]["rows_loaded"],
            "rows_quarantined": extract[-1]["rows_quarantined"],
            "arrow_bytes_read": extract[-1]["bytes_read"],
            **(
                {"dlt_version": dlt_peer.version(), "rows_loaded_by_dlt": peers[-1]["rows_loaded"]}
                if peer
                else {}
            ),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--child", choices=["extract", "baseline", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--spec-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child = {"extract": _child_extract, "baseline": _child_baseline, "dlt": _child_dlt}[
            args.child
        ]
        print(json.dumps(child(args.spec_file, args.data_dir)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-database-") as folder:
        data_dir, spec_file, generate_seconds = _prepare(Path(folder), args.rows)
        database = data_dir / "services" / "inventory.sqlite"
        extract = _run_child("extract", spec_file, data_dir)
        baseline = _run_child("baseline", spec_file, data_dir)
        figures = {
            "benchmark": "database_extract",
            "rows": args.rows,
            "sqlite_bytes": database.stat().st_size,
            "generate_seconds": round(generate_seconds, 2),
            "extract_seconds": round(extract["seconds"], 2),
            "extract_rows_per_second": round(args.rows / extract["seconds"]),
            "extract_peak_rss_mib": round(extract["peak_rss_bytes"] / 2**20),
            "rows_loaded": extract["rows_loaded"],
            "rows_quarantined": extract["rows_quarantined"],
            "arrow_bytes_read": extract["bytes_read"],
            "baseline_seconds": round(baseline["seconds"], 2),
            "baseline_rows_per_second": round(args.rows / baseline["seconds"]),
            "baseline_peak_rss_mib": round(baseline["peak_rss_bytes"] / 2**20),
            "time_ratio_extract_to_baseline": round(extract["seconds"] / baseline["seconds"], 2),
            "extract_peak_under_1_gib": extract["peak_rss_bytes"] < TARGET_PEAK_BYTES,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
