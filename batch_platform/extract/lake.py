"""The raw lake: one Parquet file per source table and day, replaced atomically.

Extracts write files, never the warehouse, so any number run in parallel and none waits on
DuckDB's single-writer lock. A partition is written to a temporary file beside its final name
and renamed over it: a reader (or a crash) sees the old file or the new one, never half of one.
Rejected records go to the quarantine, a twin tree with the same layout, readable by dbt.

    <lake>/raw/<service>/<entity>/dt=YYYY-MM-DD/data.parquet
    <lake>/quarantine/<service>/<entity>/dt=YYYY-MM-DD/data.parquet
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

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
from batch_platform.registry import SourceSpec

PARTITION_FILE = "data.parquet"
QUARANTINE_COLUMNS = (
    "source VARCHAR, partition DATE, origin VARCHAR, position BIGINT, raw VARCHAR, reason VARCHAR"
)


def partition_path(lake_root: Path, zone: str, spec: SourceSpec, day: date) -> Path:
    return lake_root / zone / spec.service / spec.entity / f"dt={day.isoformat()}" / PARTITION_FILE


def day_window(day: date) -> tuple[datetime, datetime]:
    """The half-open window [day 00:00, next day 00:00) a daily partition covers."""
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


@dataclass
class PartitionStats:
    """What one extract of one partition read and where every record went."""

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
            schema_drift=sorted(set(self.schema_drift) | set(other.schema_drift)),
            skipped_inputs=self.skipped_inputs + other.skipped_inputs,
        )


def _copy_atomically(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], final: Path):
    """COPY a query to Parquet beside `final`, then rename over it (atomic on one filesystem)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        con.execute(
            f"COPY ({sql}) TO {_literal_path(temporary)} (FORMAT parquet, COMPRESSION zstd)", params
        )
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def _literal_path(path: Path) -> str:
    """COPY ... TO needs a literal target; the path is ours (lake root + validated names)."""
    text = str(path)
    if "'" in text:
        raise ValueError(f"lake path must not contain a quote: {text}")
    return "'" + text + "'"


class PartitionLoad:
    """Stage one partition's records in a scratch DuckDB, check them, write lake + quarantine.

    The scratch database is in memory with a memory limit and a spill folder, so DuckDB spills
    to disk instead of growing without bound: a 5-million-row table extracts in bounded memory.
    """

    def __init__(
        self,
        spec: SourceSpec,
        day: date,
        lake_root: Path,
        kind: InputKind,
        input_columns: str,
        memory_limit: str = "512MB",
    ):
        self.spec, self.day, self.lake_root, self.kind = spec, day, lake_root, kind
        self._tmp = tempfile.TemporaryDirectory(prefix=f"extract-{spec.name}-")
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET memory_limit = $m", {"m": memory_limit})
        self.con.execute("SET temp_directory = $t", {"t": str(Path(self._tmp.name) / "spill")})
        self.con.execute(
            f"CREATE TABLE input ({ORIGIN} VARCHAR, {POSITION} BIGINT, {input_columns})"
        )

    def __enter__(self) -> PartitionLoad:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        self._tmp.cleanup()

    def write(self, stats: PartitionStats) -> PartitionStats:
        """Check every staged record, then replace the partition and its quarantine."""
        window = day_window(self.day)
        sql, params = checked_sql(self.kind, self.spec, window)
        self.con.execute(f"CREATE TABLE checked AS {sql}", params)
        stats.rows_read = self.con.execute("SELECT count(*) FROM checked").fetchone()[0]
        for reason, count in self.con.execute(
            f"SELECT split_part({REASON}, ', got ', 1), count(*) FROM checked "  # noqa: S608
            f"WHERE {REASON} IS NOT NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            stats.quarantine_reasons[reason] = count
        stats.rows_quarantined = sum(stats.quarantine_reasons.values())

        sql, params = loaded_sql(self.kind, self.spec)
        self.con.execute(f"CREATE TABLE loaded AS {sql}", params)
        stats.rows_loaded = self.con.execute("SELECT count(*) FROM loaded").fetchone()[0]
        stats.rows_duplicate = stats.rows_read - stats.rows_quarantined - stats.rows_loaded
        watermark_column = self.spec.watermark or self.spec.event_time
        watermark = self.con.execute(
            f"SELECT max({quote_identifier(watermark_column)}) FROM loaded"  # noqa: S608
        ).fetchone()[0]
        stats.watermark = watermark.isoformat() if watermark is not None else None

        _copy_atomically(
            self.con,
            "SELECT * FROM loaded",
            {},
            partition_path(self.lake_root, "raw", self.spec, self.day),
        )
        _copy_atomically(
            self.con,
            # Only the platform's constant column names are formatted in; values are bound.
            f"SELECT $source AS source, CAST($day AS DATE) AS partition, {ORIGIN} AS origin, "  # noqa: S608, E501
            f"{POSITION} AS position, CAST({quarantine_raw_sql(self.kind)} AS VARCHAR) AS raw, "
            f"{REASON} AS reason FROM checked WHERE {REASON} IS NOT NULL "
            f"ORDER BY {ORIGIN}, {POSITION}",
            {"source": self.spec.path, "day": self.day},
            partition_path(self.lake_root, "quarantine", self.spec, self.day),
        )
        return stats
