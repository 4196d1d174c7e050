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

from batch_platform.extract.contract import SHAPE
from batch_platform.extract.lake import PartitionLoad, PartitionStats
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


# Blank lines (empty, or spaces only: `trim(raw) = ''`) are skipped. trim() copies every line
# it is given, which took two thirds of this statement, so a line is only trimmed when its first
# character is a space; any other first character makes it non-blank.
_LINES_SQL = """
INSERT INTO input
SELECT origin, position, raw FROM (
    SELECT $origins[list_position($paths, filename)] AS origin,
           unnest(lines) AS raw, generate_subscripts(lines, 1) AS position
    FROM (SELECT filename, string_split(content, chr(10)) AS lines FROM read_text($paths))
) WHERE CASE WHEN raw = '' THEN false WHEN ascii(raw) <> 32 THEN true ELSE trim(raw) <> '' END
"""


def _stage_undecodable(load: PartitionLoad, path: Path, origin: str) -> None:
    """A file that is not UTF-8: keep its decodable lines, quarantine the others verbatim."""
    rows = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((origin, number, line.decode("utf-8")))
        except UnicodeDecodeError:
            # Not JSON either way; the repr keeps the bytes visible in the quarantine.
            rows.append((origin, number, "invalid UTF-8: " + repr(line)[2:-1][:2000]))
    if rows:
        load.con.executemany("INSERT INTO input VALUES (?, ?, ?)", rows)


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
    """Top-level fields present in the data but not in the contract (schema drift)."""
    return sorted(present - {c.name for c in spec.columns})


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
