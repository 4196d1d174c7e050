"""Generate (or extend) the demo landscape: event files, service databases, ground truth.

Generation runs *by delivery day*: day X writes exactly what the services deliver or change on
X, regenerating the origin days X-9..X that can still produce it (see `streams`). Every random
choice comes from an RNG seeded by (seed, day, purpose), never from global state or the clock,
so the same arguments give byte-identical files and `simulate(N)` followed by an append of M
days gives the same files and manifest as `simulate(N + M)`.

All input is checked before anything is written; a problem raises `LandscapeError`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batch_platform import paths
from batch_platform.simulator.databases import (
    SCHEMAS,
    TABLE_SOURCES,
    ServiceDatabases,
    database_path,
    read_only,
)
from batch_platform.simulator.landing import deliver
from batch_platform.simulator.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    build_manifest,
    read_manifest,
    write_manifest,
)
from batch_platform.simulator.options import FaultRates, LandscapeError
from batch_platform.simulator.streams import (
    LOOKBACK_DAYS,
    Event,
    OriginDay,
    OriginDayBuilder,
    check_bounds,
)
from batch_platform.simulator.timeline import days_between
from batch_platform.simulator.world import World

DEFAULT_SEED = 7
DEFAULT_SCALE = 1.0
MAX_SCALE = 100.0  # keeps daily order numbers below the range reserved for stray order ids


def _check_days(days: Any) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise LandscapeError("days", f"must be a positive whole number, got {days!r}")
    return days


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LandscapeError("seed", f"must be a whole number >= 0, got {seed!r}")
    return seed


def _check_scale(scale: Any) -> float:
    number = isinstance(scale, int | float) and not isinstance(scale, bool)
    if not number or not 0 < scale <= MAX_SCALE:
        raise LandscapeError("scale", f"must be a number > 0 and <= {MAX_SCALE:g}, got {scale!r}")
    return float(scale)


def _check_start(start: Any) -> date:
    if start is None:
        raise LandscapeError("start", "is required for a new landscape (a date like 2026-03-01)")
    if not isinstance(start, date) or hasattr(start, "hour"):
        raise LandscapeError("start", f"must be a date like 2026-03-01, got {start!r}")
    return start


def _check_writable(data_dir: Path) -> None:
    """Refuse a data folder that cannot be created or written, before writing anything."""
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise LandscapeError("data-dir", f"{data_dir} cannot be used: {probe} is not a folder")
    for folder in (probe, paths.landing_dir(data_dir), paths.services_dir(data_dir)):
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise LandscapeError("data-dir", f"{data_dir} is not writable: {folder} is read-only")


def _holds_landscape(data_dir: Path) -> bool:
    if (data_dir / MANIFEST_NAME).exists():
        return True
    return any(
        folder.is_dir() and any(folder.iterdir())
        for folder in (paths.landing_dir(data_dir), paths.services_dir(data_dir))
    )


def _plan_append(
    data_dir: Path,
    start: date | None,
    seed: int | None,
    scale: float | None,
    faults: FaultRates | None,
) -> tuple[date, int, float, FaultRates, date]:
    """The landscape's own settings, refusing any argument that contradicts them."""
    path = data_dir / MANIFEST_NAME
    if not path.is_file():
        raise LandscapeError("append", f"needs an existing landscape, but {path} does not exist")
    try:
        manifest = read_manifest(data_dir)
        if manifest["format_version"] != FORMAT_VERSION:
            raise ValueError(f"format_version {manifest['format_version']}")
        existing = (
            date.fromisoformat(manifest["start"]),
            manifest["seed"],
            manifest["scale"],
            FaultRates.from_dict(manifest["fault_rates"]),
            date.fromisoformat(manifest["end"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise LandscapeError("append", f"cannot read {path}: {error}") from None
    missing = [
        name for name in SCHEMAS if not database_path(paths.services_dir(data_dir), name).exists()
    ]
    if missing:
        raise LandscapeError(
            "append", f"needs the service databases, but {', '.join(missing)} is missing"
        )
    try:
        newest = _newest_change(paths.services_dir(data_dir))
    except sqlite3.Error as error:
        raise LandscapeError("append", f"cannot read the service databases: {error}") from None
    if newest >= existing[4].isoformat():
        raise LandscapeError(
            "append",
            f"cannot continue {data_dir}: a run was interrupted after {existing[4]}; "
            "generate it again with --replace",
        )
    for option, given, value in (
        ("start", start, existing[0]),
        ("seed", seed, existing[1]),
        ("scale", scale, existing[2]),
        ("faults", faults, existing[3]),
    ):
        if given is not None and given != value:
            raise LandscapeError(
                option, f"cannot change when appending: the landscape has {value}, got {given}"
            )
    return existing


def _newest_change(services: Path) -> str:
    """The latest `updated_at` in any service table; at or after the manifest's end only if a
    run died before writing its manifest, which an append must not build on."""
    newest = ""
    for name, table, _, _ in TABLE_SOURCES.values():
        with closing(read_only(database_path(services, name))) as db:
            # `table` comes from the fixed TABLE_SOURCES, never from input.
            query = f"SELECT max(updated_at) FROM {table}"  # noqa: S608
            newest = max(newest, db.execute(query).fetchone()[0] or "")
    return newest


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def simulate(
    data_dir: Path,
    start: date | None,
    days: int,
    seed: int | None = None,
    scale: float | None = None,
    append: bool = False,
    faults: FaultRates | None = None,
    progress: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """Generate `days` days of the landscape into `data_dir`; returns the manifest written.

    New landscape: `start` is required; `seed` defaults to 7, `scale` to 1.0, `faults` to
    `FaultRates()`. A folder that already holds a landscape is refused unless `replace` (which
    deletes `landing/`, `services/` and `landscape.json`, nothing else). With `append`, the
    days follow the landscape's last day and start, seed, scale and faults come from its
    manifest; passing a different value is an error.
    """
    data_dir = Path(data_dir)
    days = _check_days(days)
    if append:
        start, seed, scale, faults, first = _plan_append(data_dir, start, seed, scale, faults)
    else:
        start = _check_start(start)
        seed = DEFAULT_SEED if seed is None else _check_seed(seed)
        scale = DEFAULT_SCALE if scale is None else _check_scale(scale)
        faults = FaultRates() if faults is None else faults
        if not isinstance(faults, FaultRates):
            raise LandscapeError("faults", f"must be a FaultRates, got {faults!r}")
        first = start
    _check_writable(data_dir)
    if not append and _holds_landscape(data_dir):
        if not replace:
            raise LandscapeError(
                "data-dir",
                f"{data_dir} already holds a landscape: pass --append to extend it "
                "or --replace to generate a new one",
            )
        for folder in (paths.landing_dir(data_dir), paths.services_dir(data_dir)):
            shutil.rmtree(folder, ignore_errors=True)
        (data_dir / MANIFEST_NAME).unlink(missing_ok=True)

    end = first + timedelta(days=days)
    world = World(seed, start, scale)
    builder = OriginDayBuilder(world, faults)
    origins: dict[date, OriginDay] = {}

    def window(day: date) -> list[OriginDay]:
        """The origin days that can deliver on `day`, built once each per call."""
        for stale in [d for d in origins if d < day - timedelta(days=LOOKBACK_DAYS)]:
            del origins[stale]
        first_origin = max(start, day - timedelta(days=LOOKBACK_DAYS))
        return [_built(d) for d in days_between(first_origin, day + timedelta(days=1))]

    def _built(day: date) -> OriginDay:
        if day not in origins:
            origins[day] = builder.build(day)
            check_bounds(origins[day])
        return origins[day]

    data_dir.mkdir(parents=True, exist_ok=True)
    databases = ServiceDatabases(paths.services_dir(data_dir), world, faults, create=not append)
    with _progress(progress) as bar:
        task = bar.add_task("simulating days", total=days + 1)
        try:
            for day in days_between(first, end):
                sources = window(day)
                due = [e for o in sources for e in o.events_by_delivery.get(day, ())]
                deliver(paths.landing_dir(data_dir), seed, day, due, faults)
                moved = [m for o in sources for m in o.movements_by_day.get(day, ())]
                databases.apply_day(day, moved)
                bar.advance(task)
        finally:
            databases.close()
        bar.update(task, description="computing ground truth")
        in_flight = _in_flight(window(end - timedelta(days=1)), end)
        manifest = build_manifest(data_dir, seed, start, end, scale, faults, in_flight)
        write_manifest(data_dir, manifest)
        bar.advance(task)
    return manifest


def _in_flight(origins: list[OriginDay], end: date) -> list[Event]:
    """Events that happened before `end` but are due on or after it (late, not yet delivered)."""
    return [
        event
        for origin in origins
        for due, events in sorted(origin.events_by_delivery.items())
        if due >= end
        for event in events
        if event.event_day < end
    ]
