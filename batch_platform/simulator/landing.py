"""The outbox relays: how a delivery day's events become landing files, faults included.

Layout: `landing/<service>/<entity>/dt=<event day>/<delivery day>-<nnn>.jsonl`. Events of the
delivery day itself go to up to four batch files, one per six hours of event time
(`-000` .. `-003`); events delivered after their event day go to one `<delivery day>-late.jsonl`
in their old event-day folder. Line faults are added per file set, from an RNG seeded by
(seed, source, event day, delivery day), so they never depend on what else a call generates.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from batch_platform.simulator.contract import CONTRACTS, EVENT_SOURCES, VIOLATION_KINDS
from batch_platform.simulator.options import FaultRates
from batch_platform.simulator.streams import Event
from batch_platform.simulator.timeline import DAY_US

BATCHES_PER_DAY = 4
_BATCH_US = DAY_US // BATCHES_PER_DAY
# What a broken relay or proxy writes instead of an event. None of these is valid JSON.
GARBAGE_LINES = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "relay: connection reset by peer",
    "#### outbox checkpoint ####",
    "ERROR 500 upstream unavailable",
    '{"event_id": ',
    "{{{",
)
_NOT_A_NUMBER = ("abc", "n/a", "unknown", "twelve")
_NOT_A_TIME = ("yesterday", "n/a", "31/02/2026 25:61", "not a timestamp")
_UNKNOWN_CHANNELS = ("smart_tv", "kiosk", "call_center")
_UNKNOWN_EVENT_TYPES = ("archived", "reversed", "teleported")


def encode(payload: dict[str, Any]) -> str:
    """One event as the relay writes it: compact JSON, UTF-8 kept as is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def contract_violation(rng: random.Random, source: str, payload: dict[str, Any]) -> tuple[str, str]:
    """A well-formed copy of `payload` with a fresh event_id that breaks one contract rule.

    Returns (kind, line). Wrong types go only to timestamp and numeric columns: a number in a
    text column still reads as text, so it would not break the contract.
    """
    kind = rng.choice(VIOLATION_KINDS)
    broken = dict(payload, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    columns = CONTRACTS[source]
    if kind == "missing_field":
        column = rng.choice([c for c in columns if c.required and c.name != "event_id"])
        if rng.random() < 0.5:
            del broken[column.name]
        else:
            broken[column.name] = None
    elif kind == "wrong_type":
        column = rng.choice([c for c in columns if c.kind in ("timestamp", "integer", "decimal")])
        choices = _NOT_A_TIME if column.kind == "timestamp" else _NOT_A_NUMBER
        broken[column.name] = rng.choice(choices)
    else:
        column = rng.choice([c for c in columns if c.minimum is not None or c.accepted])
        if column.name == "event_type":
            entity = broken["event_type"].split("_")[0]
            broken[column.name] = f"{entity}_{rng.choice(_UNKNOWN_EVENT_TYPES)}"
        elif column.accepted:
            broken[column.name] = rng.choice(_UNKNOWN_CHANNELS)
        elif column.minimum == 0:
            broken[column.name] = -abs(broken[column.name]) or -1.0
        else:
            broken[column.name] = rng.choice((0, -1))
    return kind, encode(broken)


def malformed_line(rng: random.Random, line: str) -> str:
    """A line that is not JSON: a real line cut short (a crashed write) or proxy garbage."""
    if rng.random() < 0.7:
        return line[: rng.randrange(1, len(line))]
    return rng.choice(GARBAGE_LINES)


def with_line_faults(
    rng: random.Random, source: str, batches: list[list[Event]], faults: FaultRates
) -> list[list[str]]:
    """The lines of each batch file after duplicates, contract violations and malformed lines.

    A duplicate re-delivers a line verbatim in the same or a later batch of the file set,
    always after the original; violations and malformed lines are extra lines, never in place
    of an event.
    """
    lines = [[encode(event.payload) for event in batch] for batch in batches]
    used = [index for index, batch in enumerate(lines) if batch]
    repeats = []
    for index in used:
        for line in lines[index]:
            if rng.random() < faults.duplicate:
                repeats.append((index, rng.choice([t for t in used if t >= index]), line))
    for index, target, line in repeats:
        after = lines[target].index(line) + 1 if target == index else 0
        lines[target].insert(rng.randint(after, len(lines[target])), line)
    for index in used:
        for event in batches[index]:
            if rng.random() < faults.contract_violation:
                _, line = contract_violation(rng, source, event.payload)
                lines[index].insert(rng.randint(0, len(lines[index])), line)
    for index in used:
        faulty = []
        for line in lines[index]:
            faulty.append(line)
            if rng.random() < faults.malformed:
                faulty.append(malformed_line(rng, line))
        lines[index] = faulty
    return lines


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a hidden temp file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def deliver(
    landing: Path, seed: int, day: date, events: Iterable[Event], faults: FaultRates
) -> list[Path]:
    """Write every landing file of delivery day `day`; returns the files written."""
    groups: dict[tuple[str, date], list[Event]] = defaultdict(list)
    for event in events:
        groups[(event.source, event.event_day)].append(event)
    written = []
    for source, event_day in sorted(groups, key=lambda k: (EVENT_SOURCES.index(k[0]), k[1])):
        due = sorted(
            groups[(source, event_day)], key=lambda e: (e.occurred_us, e.payload["event_id"])
        )
        if event_day == day:
            batches: list[list[Event]] = [[] for _ in range(BATCHES_PER_DAY)]
            for event in due:
                batches[event.occurred_us % DAY_US // _BATCH_US].append(event)
            names = [f"{day.isoformat()}-{n:03d}.jsonl" for n in range(BATCHES_PER_DAY)]
        else:
            batches, names = [due], [f"{day.isoformat()}-late.jsonl"]
        rng = random.Random(f"{seed}:{source}:{event_day.isoformat()}:{day.isoformat()}:lines")
        folder = landing / source / f"dt={event_day.isoformat()}"
        for name, lines in zip(names, with_line_faults(rng, source, batches, faults), strict=True):
            if lines:
                write_atomically(folder / name, ("\n".join(lines) + "\n").encode("utf-8"))
                written.append(folder / name)
    return written
