"""The raw lake: one Parquet file per source table and day, replaced atomically.

Extracts write files, never the warehouse, so any number run in parallel and none waits on
DuckDB's single-writer lock. A partition's lake and quarantine files are each written to a
temporary file beside their final name, both flushed to disk, then renamed over the old ones: a
reader (or a crash, even SIGKILL) sees the old file or the new one, never half of one. A killed
writer's temporary files are hidden (`.data.parquet.<host>.<pid>.<random>.tmp`, which no
`*.parquet` glob matches) and removed by the next write of the same partition.
Rejected records go to the quarantine, a twin tree with the same layout, readable by dbt.

    <lake>/raw/<service>/<entity>/dt=YYYY-MM-DD/data.parquet
    <lake>/quarantine/<service>/<entity>/dt=YYYY-MM-DD/data.parquet
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

from batch_platform import pii
from batch_platform.extract.contract import (
    ORIGIN,
    POSITION,
    REASON,
    InputKind,
    checked_sql,
    loaded_sql,
    quarantine_raw_sql,
    quote_identifier,
)
from batch_platform.processes import process_is_running
from batch_platform.registry import SourceSpec

PARTITION_FILE = "data.parquet"
_MASK_FUNCTION = "_platform_mask_pii_record"
SCRATCH_MEMORY_LIMIT = "512MB"


def partition_path(lake_root: Path, zone: str, spec: SourceSpec, day: date) -> Path:
    return lake_root / zone / spec.service / spec.entity / f"dt={day.isoformat()}" / PARTITION_FILE


def day_window(day: date) -> tuple[datetime, datetime]:
    """The half-open window [day 00:00, next day 00:00) a daily partition covers."""
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


# Schema drift lists at most this many unknown field names (sorted), then counts the rest: a
# producer that sends 200,000 distinct keys must not write megabytes of metadata and log.
SCHEMA_DRIFT_LISTED = 20
_DRIFT_MORE = re.compile(
    r"^\.\.\. and \d+ more \((?:at least )?(\d+) fields not in the contract\)$"
)


def schema_drift_report(names: Iterable[str], total: int | None = None) -> list[str]:
    """The unknown field names as reported: all of them when there are at most
    SCHEMA_DRIFT_LISTED, else the first SCHEMA_DRIFT_LISTED (sorted) and one last entry
    `... and N more (M fields not in the contract)`.

    `total` is given when it is only a lower bound (several days combined, each already cut
    short); the last entry then says `at least M`.
    """
    ordered = sorted(set(names))
    exact = total is None
    total = len(ordered) if total is None else max(total, len(ordered))
    if total <= SCHEMA_DRIFT_LISTED and len(ordered) == total:
        return ordered
    listed = ordered[:SCHEMA_DRIFT_LISTED]
    bound = "" if exact else "at least "
    return [
        *listed,
        f"... and {total - len(listed)} more ({bound}{total} fields not in the contract)",
    ]


def schema_drift_count(report: list[str]) -> int:
    """How many fields a `schema_drift_report` stands for (its last entry's count, if cut)."""
    more = _DRIFT_MORE.match(report[-1]) if report else None
    return int(more.group(1)) if more else len(report)


@dataclass
class PartitionStats:
    """What one extract of one partition read and where every record went.

    `schema_drift` is a `schema_drift_report`: bounded, with the count of what it leaves out.
    """

    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    bytes_read: int = 0
    input_files: int = 0
    watermark: str | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    schema_drift: list[str] = field(default_factory=list)
    skipped_inputs: list[str] = field(default_factory=list)

    def combine(self, other: PartitionStats) -> PartitionStats:
        """The figures of two extracts together (for a run that covers several days)."""
        reasons = dict(self.quarantine_reasons)
        for reason, count in other.quarantine_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        marks = [m for m in (self.watermark, other.watermark) if m]
        return PartitionStats(
            rows_read=self.rows_read + other.rows_read,
            rows_loaded=self.rows_loaded + other.rows_loaded,
            rows_duplicate=self.rows_duplicate + other.rows_duplicate,
            rows_quarantined=self.rows_quarantined + other.rows_quarantined,
            bytes_read=self.bytes_read + other.bytes_read,
            input_files=self.input_files + other.input_files,
            watermark=max(marks) if marks else None,
            quarantine_reasons=reasons,
            schema_drift=self._combined_drift(other),
            skipped_inputs=self.skipped_inputs + other.skipped_inputs,
        )

    def _combined_drift(self, other: PartitionStats) -> list[str]:
        """The union of two days' drift; when either was cut short, only a lower bound of
        how many distinct fields the two days hold together is known."""
        reports = (self.schema_drift, other.schema_drift)
        if not all(reports):
            return list(self.schema_drift or other.schema_drift)
        cut = [bool(r) and _DRIFT_MORE.match(r[-1]) is not None for r in reports]
        names = [n for r, c in zip(reports, cut, strict=True) for n in (r[:-1] if c else r)]
        if not any(cut):
            return schema_drift_report(names)
        return schema_drift_report(names, total=max(*map(schema_drift_count, reports)))


_HOST = socket.gethostname()


def temporary_name(final: Path) -> Path:
    """`.<name>.<host>.<pid>.<random>.tmp` beside `final`: whose it is, so a leftover of a
    killed writer can be told from a file another writer is still writing. Also used for the
    analyst snapshot (publish.py), whose writer is DuckDB and adds a `.tmp.wal` beside it."""
    return final.with_name(f".{final.name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _writer_is_gone(temporary: Path, final: Path) -> bool:
    """True for a temporary file of `final` left by a process of this host that no longer runs."""
    stem = temporary.name.removesuffix(".tmp")
    head, pid, _ = stem.rsplit(".", 2)
    if head != f".{final.name}.{_HOST}" or not pid.isdigit():
        return False  # another host's, or not ours at all: leave it
    return not process_is_running(int(pid))


def remove_leftovers(final: Path) -> list[Path]:
    """Delete the temporary files a killed writer left beside `final`; return them.

    Files named after a temporary file (`<temporary>.wal`, which DuckDB writes beside a
    database) go with it, whether or not the temporary file itself is still there.
    """
    removed = []
    if final.parent.is_dir():
        for leftover in final.parent.glob(f".{final.name}.*.tmp*"):
            temporary = leftover.with_name(leftover.name[: leftover.name.rindex(".tmp") + 4])
            if _writer_is_gone(temporary, final):
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _replace_atomically(
    con: duckdb.DuckDBPyConnection, copies: list[tuple[str, dict[str, Any], Path]]
) -> None:
    """COPY each query to a temporary Parquet file beside its target, then rename them all.

    Every file is written and flushed to disk before the first rename, so a crash (even
    SIGKILL) while writing leaves every target as it was; only the renames themselves, a few
    system calls in a row, separate the old partition from the new. Renames are atomic on one
    filesystem: a reader sees the old file or the new one, never half of one.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for sql, params, final in copies:
            _literal_path(final)  # refuses an unusable path before anything is created
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(final)
            temporary = temporary_name(final)
            staged.append((temporary, final))
            con.execute(
                f"COPY ({sql}) TO {_literal_path(temporary)} (FORMAT parquet, COMPRESSION zstd)",
                params,
            )
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        for temporary, final in staged:
            os.replace(temporary, final)
        for folder in {final.parent for _, final in staged}:
            _fsync_directory(folder)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def _literal_path(path: Path) -> str:
    """COPY ... TO needs a literal target; the path is ours (lake root + validated names).

    A data folder whose path holds a quote is refused rather than escaped: dbt splices the same
    folder into its SQL (the sources' `external_location`), so it could not work there anyway.
    """
    text = str(path)
    if "'" in text:
        raise ValueError(f"lake path must not contain a quote: {text}")
    return "'" + text + "'"


_scratch: tuple[int, duckdb.DuckDBPyConnection] | None = None
_scratch_lock = threading.Lock()


def scratch_database() -> duckdb.DuckDBPyConnection:
    """This process's scratch DuckDB: in memory, with a memory limit and a spill folder.

    One per process, because creating a DuckDB database costs 15-20 ms, a tenth of a small
    partition's extract; a connection to an existing one costs about 1 ms. Each load works
    in its own connection (`cursor()`) with TEMP tables, which no other connection sees, so
    loads on several threads do not meet. The limit makes DuckDB spill to disk instead of
    growing without bound: a 5-million-row table extracts in bounded memory. Keyed by process
    id: a forked child never uses its parent's database.
    """
    global _scratch
    with _scratch_lock:
        if _scratch is None or _scratch[0] != os.getpid():
            spill = tempfile.mkdtemp(prefix="extract-spill-")
            atexit.register(shutil.rmtree, spill, ignore_errors=True)
            database = duckdb.connect(
                ":memory:",
                config={"memory_limit": SCRATCH_MEMORY_LIMIT, "temp_directory": spill},
            )
            _scratch = (os.getpid(), database)
        return _scratch[1]


class PartitionLoad:
    """Stage one partition's records in scratch tables, check them, write lake + quarantine.

    The tables are TEMP tables of a connection of its own to the process's scratch database
    (`scratch_database`), gone when the load closes.
    """

    def __init__(
        self,
        spec: SourceSpec,
        day: date,
        lake_root: Path,
        kind: InputKind,
        input_columns: str,
    ):
        self.spec, self.day, self.lake_root, self.kind = spec, day, lake_root, kind
        self._checked = False
        # The masking function is registered database-wide: a name of this load's own.
        self._mask_function = f"{_MASK_FUNCTION}_{uuid.uuid4().hex}"
        self.con = scratch_database().cursor()
        # The contract reads a time without an offset as UTC (this session's time zone), and
        # one with an offset as the instant it names; both are kept in UTC.
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(
            f"CREATE TEMP TABLE input ({ORIGIN} VARCHAR, {POSITION} BIGINT, {input_columns})"
        )
        if spec.pii_columns:
            self._register_pii_mask()

    def __enter__(self) -> PartitionLoad:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.spec.pii_columns:
            self.con.remove_function(self._mask_function)
        self.con.close()

    def _register_pii_mask(self) -> None:
        """Register the function that masks a quarantined record of this PII source.

        Quarantined records are kept as received so they can be diagnosed and replayed, but a
        PII source's must not carry readable PII into the lake and from there into dbt's
        `stg_platform__quarantine`: every field but the contract's non-PII columns is replaced
        by its keyed hash (`pii.mask_record`), with the key from BATCH_PLATFORM_PII_SALT.
        """
        key = pii.salt()
        clear = frozenset(c.name for c in self.spec.columns if not c.pii)
        self.con.create_function(
            self._mask_function,
            lambda text: pii.mask_record(text, clear, key),
            ["VARCHAR"],
            "VARCHAR",
            null_handling="special",
            side_effects=False,
        )

    def check(self) -> None:
        """Decide every staged record's first broken rule, once, into the table `checked`.

        Separate from `write` so a JSON extract can list the fields of the records that parsed
        (schema drift, missing required columns) from `checked`, without parsing them again.
        """
        if self._checked:
            return
        sql, params = checked_sql(self.kind, self.spec, day_window(self.day))
        self.con.execute(f"CREATE TEMP TABLE checked AS {sql}", params)
        self._checked = True

    def write(self, stats: PartitionStats) -> PartitionStats:
        """Check every staged record, then replace the partition and its quarantine."""
        self.check()
        stats.rows_read = self.con.execute("SELECT count(*) FROM checked").fetchone()[0]
        for reason, count in self.con.execute(
            f"SELECT split_part({REASON}, ', got ', 1), count(*) FROM checked "  # noqa: S608
            f"WHERE {REASON} IS NOT NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            stats.quarantine_reasons[reason] = count
        stats.rows_quarantined = sum(stats.quarantine_reasons.values())

        sql, params = loaded_sql(self.kind, self.spec)
        self.con.execute(f"CREATE TEMP TABLE loaded AS {sql}", params)
        stats.rows_loaded = self.con.execute("SELECT count(*) FROM loaded").fetchone()[0]
        stats.rows_duplicate = stats.rows_read - stats.rows_quarantined - stats.rows_loaded
        watermark_column = self.spec.watermark or self.spec.event_time
        watermark = self.con.execute(
            f"SELECT max({quote_identifier(watermark_column)}) FROM loaded"  # noqa: S608
        ).fetchone()[0]
        stats.watermark = watermark.isoformat() if watermark is not None else None

        raw = f"CAST({quarantine_raw_sql(self.kind)} AS VARCHAR)"
        if self.spec.pii_columns:
            raw = f"{self._mask_function}({raw})"
        quarantine = (
            # Only the platform's constant column names are formatted in; values are bound.
            f"SELECT $source AS source, CAST($day AS DATE) AS partition, {ORIGIN} AS origin, "  # noqa: S608
            f"{POSITION} AS position, {raw} AS raw, {REASON} AS reason FROM checked "
            f"WHERE {REASON} IS NOT NULL ORDER BY {ORIGIN}, {POSITION}"
        )
        _replace_atomically(
            self.con,
            [
                (
                    "SELECT * FROM loaded",
                    {},
                    partition_path(self.lake_root, "raw", self.spec, self.day),
                ),
                (
                    quarantine,
                    {"source": self.spec.path, "day": self.day},
                    partition_path(self.lake_root, "quarantine", self.spec, self.day),
                ),
            ],
        )
        return stats
