"""The events access method: outbox files a service's relay delivers to the landing zone.

Layout (the registry's `landing` pattern): `<landing>/<service>/<topic>/dt=<event day>/*.jsonl`.
The relay files events by the day they happened, so a late delivery is a new file in an old
day's folder; the extract of a day reads every file in that day's folder, whenever it arrived.

Only regular files whose resolved path stays inside the landing root and whose name is plain
(`[A-Za-z0-9._-]+.jsonl`) are read. Anything else (a `..` or absolute name, a symlink that leads
out, an odd name) is skipped and reported, never opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from batch_platform.extract.contract import SHAPE
from batch_platform.extract.lake import PartitionLoad, PartitionStats, schema_drift_report
from batch_platform.paths import lake_dir, landing_dir
from batch_platform.registry import SourceSpec

SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.jsonl$")


@dataclass(frozen=True)
class LandingFiles:
    files: tuple[Path, ...]
    skipped: tuple[str, ...]  # "<name>: <why>" for every candidate refused


def landing_glob(spec: SourceSpec, day: date) -> str:
    return spec.options["landing"].replace("{date}", day.isoformat())


def refusal(candidate: Path, landing_root: Path) -> str | None:
    """Why a landing file must not be read, or None when it is safe to read."""
    if not SAFE_FILE_NAME.match(candidate.name):
        return "file name outside the expected pattern"
    resolved = candidate.resolve()
    if not resolved.is_relative_to(landing_root.resolve()):
        return "resolves outside the landing folder"
    if not resolved.is_file():
        return "not a regular file"
    return None


def find_landing_files(spec: SourceSpec, landing_root: Path, day: date) -> LandingFiles:
    """The files of one source and day, with every refused candidate and why."""
    files, skipped = [], []
    for candidate in sorted(landing_root.glob(landing_glob(spec, day))):
        reason = refusal(candidate, landing_root)
        if reason:
            skipped.append(f"{candidate.relative_to(landing_root).as_posix()}: {reason}")
        else:
            files.append(candidate)
    return LandingFiles(tuple(files), tuple(skipped))


# Which lines are records, one rule for every file, UTF-8 or not: a UTF-8 byte order mark at
# the start of a file is dropped; a line is what lies between two LF, and a CR right before an
# LF (a CRLF file) is part of the line ending, not of the line. A line that is then empty or
# only JSON whitespace (space, tab, CR: RFC 8259) is blank and skipped; every other line is a
# record, numbered by its line in the file. The mark and the CRs are dealt with once per file
# (a CRLF file is copied once without them), not per line; trim() copies every line it is
# given, which took two thirds of this statement, so a line is only trimmed when it starts with
# whitespace.
_STAGE_SQL = """
INSERT INTO input
SELECT origin, position, raw FROM {lines}
WHERE CASE WHEN raw = '' THEN false WHEN ascii(raw) NOT IN (32, 9, 13) THEN true
      ELSE trim(raw, ' ' || chr(9) || chr(13)) <> '' END
"""
# The lines of UTF-8 files, read by DuckDB.
_FILE_LINES = """(
    SELECT $origins[list_position($paths, filename)] AS origin,
           unnest(lines) AS raw, generate_subscripts(lines, 1) AS position
    FROM (
        SELECT filename, string_split(CASE WHEN contains(content, chr(13))
            THEN replace(content, chr(13) || chr(10), chr(10)) ELSE content END, chr(10)) AS lines
        FROM (
            SELECT filename, CASE WHEN starts_with(content, chr(65279)) THEN substr(content, 2)
                ELSE content END AS content
            FROM read_text($paths)
        )
    )
)"""
_LINES_SQL = _STAGE_SQL.format(lines=_FILE_LINES)
# The lines of a file that is not UTF-8, split and decoded (or spelled out) in Python.
_UNDECODABLE = "undecodable_lines"
_UNDECODABLE_SQL = _STAGE_SQL.format(lines=_UNDECODABLE)
UTF8_BOM = b"\xef\xbb\xbf"


def _stage_undecodable(load: PartitionLoad, path: Path, origin: str) -> None:
    """A file that is not UTF-8: its lines go through the same rule as any file's.

    A line that decodes is staged as it is. One that does not is staged whole with its bytes
    spelled out (`invalid UTF-8: ...\\xff...`, Python's escapes), so nothing of it is lost: the
    contract then quarantines it like any line, for its size first (measured on that text) and
    otherwise as malformed JSON.
    """
    positions, lines = [], []
    parts = path.read_bytes().removeprefix(UTF8_BOM).split(b"\n")
    for number, part in enumerate(parts, start=1):
        line = part if number == len(parts) else part.removesuffix(b"\r")  # CR LF: the ending
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = "invalid UTF-8: " + repr(line)[2:-1]
        positions.append(number)
        lines.append(text)
    table = pa.table(
        {
            "origin": pa.array([origin] * len(lines), pa.string()),
            "position": pa.array(positions, pa.int64()),
            "raw": pa.array(lines, pa.string()),
        }
    )
    load.con.register(_UNDECODABLE, table)
    try:
        load.con.execute(_UNDECODABLE_SQL)
    finally:
        load.con.unregister(_UNDECODABLE)


def extract_events(spec: SourceSpec, day: date, data_dir: Path) -> PartitionStats:
    """Read a day's landing files with DuckDB, check them, replace the lake partition."""
    landing_root, lake_root = landing_dir(data_dir), lake_dir(data_dir)
    found = find_landing_files(spec, landing_root, day)
    stats = PartitionStats(skipped_inputs=list(found.skipped))
    stats.input_files = len(found.files)
    stats.bytes_read = sum(f.stat().st_size for f in found.files)
    with PartitionLoad(spec, day, lake_root, "json", "raw VARCHAR") as load:
        paths = [str(f) for f in found.files]
        origins = [f.relative_to(landing_root).as_posix() for f in found.files]
        if paths:
            try:
                load.con.execute(_LINES_SQL, {"paths": paths, "origins": origins})
            except duckdb.Error:
                # At least one file is not valid UTF-8: stage file by file so one bad file
                # costs only its bad lines.
                load.con.execute("DELETE FROM input")
                for path, origin in zip(paths, origins, strict=True):
                    try:
                        load.con.execute(_LINES_SQL, {"paths": [path], "origins": [origin]})
                    except duckdb.Error:
                        _stage_undecodable(load, Path(path), origin)
        present = present_fields(load)
        stats.schema_drift = unknown_fields(present, spec)
        fail_on_missing_required_columns(load, spec, present)
        return load.write(stats)


def present_fields(load: PartitionLoad) -> set[str]:
    """Every top-level field of the staged records that are JSON objects, in one scan.

    Reads `checked`, whose shape column already says which lines parse as objects (and are
    not too large to parse), so only their keys are parsed here, not their shape again.
    """
    load.check()
    rows = load.con.execute(
        f"SELECT DISTINCT unnest(json_keys(raw)) FROM checked WHERE {SHAPE} IS NULL"  # noqa: S608
    ).fetchall()
    return {r[0] for r in rows}


def unknown_fields(present: set[str], spec: SourceSpec) -> list[str]:
    """Top-level fields present in the data but not in the contract (schema drift), as a
    bounded `schema_drift_report`: the first few names and how many there are."""
    return schema_drift_report(present - {c.name for c in spec.columns})


class MissingColumnError(ValueError):
    """A required column absent from every record: the producer changed its schema."""


def fail_on_missing_required_columns(
    load: PartitionLoad, spec: SourceSpec, present: set[str]
) -> None:
    required = [c.name for c in spec.columns if c.required]
    if not present:
        return  # no valid object at all: every record is quarantined with its own reason
    missing = [c for c in required if c not in present]
    if missing:
        raise MissingColumnError(
            f"{spec.path}: required column(s) {', '.join(missing)} missing from every record "
            f"of partition {load.day.isoformat()}; the producer's schema changed"
        )
