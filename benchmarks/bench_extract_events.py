"""Extract throughput of the events access method, next to a bare DuckDB read of the same files.

The platform's `extract_events` reads every landing file of a day as text, checks each line
against the contract (JSON, required fields, types, accepted values), drops duplicate event
ids, and writes the lake partition and the quarantine atomically. The baseline is the least
work that turns the same files into Parquet: DuckDB's `read_json(..., format =
'newline_delimited', ignore_errors = true)` copied to one zstd Parquet file per day, with no
contract, no de-duplication and no quarantine. Both process the whole landing folder of
`orders/order_events`, day by day, in the same process, alternating which goes first.

The target is extract throughput >= 0.5x the bare read's: checking every record may cost up
to half the speed, no more.
"""

from __future__ import annotations

from datetime import date

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

    extract_seconds, bare_seconds = [], []
    rows_read = bytes_read = bare_rows = 0
    for repeat in range(repeats):
        reset_outputs(data_dir)
        # Alternate who goes first, so neither always finds the files in a warmer cache.
        order = ("extract", "bare") if repeat % 2 == 0 else ("bare", "extract")
        for which in order:
            if which == "extract":
                seconds, (rows_read, bytes_read) = timed(lambda: _extract(data_dir, spec, days))
                extract_seconds.append(seconds)
            else:
                seconds, bare_rows = timed(lambda: _bare_read(data_dir, spec, days))
                bare_seconds.append(seconds)
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
        },
        "checks": [
            check(
                "extract throughput / bare read throughput",
                median_ratio(bare_seconds, extract_seconds),
                "same files, same days: bare seconds divided by extract seconds (median of "
                "per-repeat ratios)",
                target=TARGET_RATIO,
            )
        ],
        "info": {
            "simulate_seconds": round(simulate_seconds, 2),
            "rows_read_by_extract": rows_read,
            "rows_written_by_bare_read": bare_rows,
            "ground_truth": {k: truth[k] for k in ("loaded", "duplicates", "malformed", "invalid")},
        },
    }
