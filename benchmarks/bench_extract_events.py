"""Extract throughput of the events access method, next to a bare DuckDB read of the same files.

The platform's `extract_events` reads every landing file of a day as text, checks each line
against the contract (JSON, required fields, types, accepted values), drops duplicate event
ids, and writes the lake partition and the quarantine atomically. The baseline is the least
work that turns the same files into Parquet: DuckDB's `read_json(..., format =
'newline_delimited', ignore_errors = true)` copied to one zstd Parquet file per day, with no
contract, no de-duplication and no quarantine. The peer is dlt (`benchmarks/dlt_peer.py`):
the same files, one load and one table per day into Parquet through its filesystem destination,
under a schema contract built from the same registry columns. All three process the whole
landing folder of `orders/order_events`, day by day, in the same process, in an order that
rotates between repeats.

The target is extract throughput >= 0.5x the bare read's: checking every record may cost up
to half the speed, no more; and >= 1.0x dlt's: ahead of the peer.
"""

from __future__ import annotations

import shutil
from datetime import date

from benchmarks import dlt_peer
from benchmarks.harness import (
    BENCH_START,
    Context,
    check,
    landscape_days,
    log,
    measurement,
    median_ratio,
    reset_outputs,
    simulate_landscape,
    timed,
)

NAME = "extract_events"
TITLE = "Extract throughput: events (orders/order_events)"
SOURCE = "orders__order_events"
TARGET_RATIO = 0.5
PEER_TARGET_RATIO = 1.0


def _bare_read(data_dir, spec, days: list[str]) -> int:
    """read_json -> COPY to Parquet per day; returns rows written."""
    import duckdb

    from batch_platform.extract.events import find_landing_files

    out = data_dir / "baseline"
    out.mkdir(exist_ok=True)
    rows = 0
    con = duckdb.connect(":memory:")
    try:
        for day in days:
            files = find_landing_files(spec, data_dir / "landing", date.fromisoformat(day)).files
            target = out / f"{day}.parquet"
            # COPY ... TO takes a literal; the target is our own file under the work folder.
            con.execute(
                "COPY (SELECT * FROM read_json($files, format = 'newline_delimited', "  # noqa: S608
                f"ignore_errors = true)) TO '{target}' (FORMAT parquet, COMPRESSION zstd)",
                {"files": [str(f) for f in files]},
            )
            rows += con.execute(
                "SELECT count(*) FROM read_parquet($p)", {"p": str(target)}
            ).fetchone()[0]
    finally:
        con.close()
    return rows


def _extract(data_dir, spec, days: list[str]) -> tuple[int, int]:
    """The platform's extract per day; returns (rows read, bytes read)."""
    from batch_platform.extract.events import extract_events

    rows = size = 0
    for day in days:
        stats = extract_events(spec, date.fromisoformat(day), data_dir)
        rows += stats.rows_read
        size += stats.bytes_read
    return rows, size


def _lake_rows(data_dir, spec, day: str) -> int:
    """Rows of the lake partition the extract wrote for `day` (0 if it wrote none)."""
    import pyarrow.parquet as pq

    from batch_platform.extract.lake import partition_path
    from batch_platform.paths import lake_dir

    path = partition_path(lake_dir(data_dir), "raw", spec, date.fromisoformat(day))
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def run(ctx: Context) -> dict:
    from batch_platform.dbt_project import load_manifest
    from batch_platform.registry import load_registry

    scale, days_count, repeats = ctx.pick(full=(8.0, 3, 5), quick=(0.5, 2, 2))
    data_dir = ctx.work / "data"
    log(f"simulating {days_count} days at scale {scale}")
    simulate_seconds, manifest = simulate_landscape(data_dir, BENCH_START, days_count, scale)
    days = landscape_days(manifest)
    spec = next(s for s in load_registry(load_manifest()) if s.name == SOURCE)
    truth = manifest["sources"][spec.path]["totals"]

    peer = dlt_peer.available()
    if peer:  # imported before anything is timed, like the platform's modules
        import dlt  # noqa: F401
        import pydantic  # noqa: F401

    contenders = ("extract", "bare", "dlt") if peer else ("extract", "bare")
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    rows_read = bytes_read = bare_rows = 0
    dlt_loaded: dict[str, int] = {}
    for repeat in range(repeats):
        reset_outputs(data_dir)
        for folder in ("dlt-lake", "dlt-pipelines"):  # each repeat loads from scratch
            shutil.rmtree(ctx.work / folder, ignore_errors=True)
        # Rotate who goes first, so none always finds the files in a warmer cache.
        shift = repeat % len(contenders)
        for which in contenders[shift:] + contenders[:shift]:
            if which == "extract":
                took, (rows_read, bytes_read) = timed(lambda: _extract(data_dir, spec, days))
            elif which == "bare":
                took, bare_rows = timed(lambda: _bare_read(data_dir, spec, days))
            else:
                took, dlt_loaded = timed(
                    lambda: dlt_peer.load_events(spec, data_dir, ctx.work, days)
                )
            seconds[which].append(took)
    extract_seconds, bare_seconds = seconds["extract"], seconds["bare"]
    loaded = sum(_lake_rows(data_dir, spec, day) for day in days)
    if peer:
        # dlt drops what is not a JSON object and what breaks the contract, and keeps
        # duplicates (its filesystem destination appends): the ground truth says how many.
        expected = truth["loaded"] + truth["duplicates"]
        if dlt_loaded["rows"] != expected or loaded != truth["loaded"]:
            raise AssertionError(
                f"rows loaded: dlt {dlt_loaded['rows']:,} (expected loaded + duplicates = "
                f"{expected:,}), platform {loaded:,} (expected {truth['loaded']:,})"
            )
    mib = bytes_read / 2**20
    return {
        "parameters": {
            "source": spec.path,
            "scale": scale,
            "days": days_count,
            "repeats": repeats,
            "landing_files": truth["files"],
            "landing_lines": truth["lines"],
            "landing_mib": round(mib, 2),
        },
        "measurements": {
            "extract_seconds": measurement("extract_events, all days", extract_seconds, "s"),
            "bare_seconds": measurement("bare read_json -> Parquet (baseline)", bare_seconds, "s"),
            "extract_rows_per_second": measurement(
                "extract rows/s", [rows_read / s for s in extract_seconds], "rows/s", 0
            ),
            "bare_rows_per_second": measurement(
                "bare rows/s", [bare_rows / s for s in bare_seconds], "rows/s", 0
            ),
            "extract_mib_per_second": measurement(
                "extract MiB/s", [mib / s for s in extract_seconds], "MiB/s", 2
            ),
            **(
                {
                    "dlt_seconds": measurement(
                        "dlt: contract model -> filesystem Parquet (peer)", seconds["dlt"], "s"
                    ),
                    "dlt_rows_per_second": measurement(
                        "dlt rows/s", [rows_read / s for s in seconds["dlt"]], "rows/s", 0
                    ),
                }
                if peer
                else {}
            ),
        },
        "checks": [
            check(
                "extract throughput / bare read throughput",
                median_ratio(bare_seconds, extract_seconds),
                "same files, same days: bare seconds divided by extract seconds (median of "
                "per-repeat ratios)",
                target=TARGET_RATIO,
            ),
            *(
                [
                    check(
                        "extract throughput / dlt throughput",
                        median_ratio(seconds["dlt"], extract_seconds),
                        "same files, same days, each landing line: dlt seconds divided by "
                        "extract seconds (median of per-repeat ratios)",
                        target=PEER_TARGET_RATIO,
                    )
                ]
                if peer
                else []
            ),
        ],
        "notes": [] if peer else [dlt_peer.MISSING],
        "info": {
            "simulate_seconds": round(simulate_seconds, 2),
            "rows_read_by_extract": rows_read,
            "rows_written_by_bare_read": bare_rows,
            "rows_loaded_by_extract": loaded,
            **(
                {
                    "dlt_version": dlt_peer.version(),
                    "rows_loaded_by_dlt": dlt_loaded["rows"],
                    "lines_dropped_by_dlt_as_not_objects": dlt_loaded["lines_not_objects"],
                }
                if peer
                else {}
            ),
            "ground_truth": {k: truth[k] for k in ("loaded", "duplicates", "malformed", "invalid")},
        },
    }
