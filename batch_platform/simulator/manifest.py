"""The ground truth of a landscape (`landscape.json`), computed from what was written.

Nothing here trusts the generator's bookkeeping: the landing files are read back line by line
and judged by the contract rules, the databases are queried. So a correct extract of the files
and tables must reproduce these numbers exactly, and a test can rely on them. The one input
that is not on disk is the list of events still in flight (generated, due after the horizon),
which explains the reconciliation breaks that will heal once those events arrive.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from batch_platform.simulator.contract import (
    CHANNELS,
    EVENT_SOURCES,
    ORDERS,
    PAYMENTS,
    SESSIONS,
    SHIPMENTS,
    VIOLATION_KINDS,
    classify,
)
from batch_platform.simulator.databases import TABLE_SOURCES, rows_by_day, sale_movements
from batch_platform.simulator.options import FaultRates
from batch_platform.simulator.streams import Event
from batch_platform.simulator.timeline import days_between

FORMAT_VERSION = 1
MANIFEST_NAME = "landscape.json"
BUSINESS_FAULTS = (
    "paid_without_capture",
    "amount_mismatch",
    "shipment_for_unpaid_or_cancelled",
    "movement_without_order",
)


def _partition() -> dict[str, Any]:
    return {
        "files": 0,
        "lines": 0,
        "malformed": 0,
        "invalid": 0,
        "invalid_by_kind": dict.fromkeys(VIOLATION_KINDS, 0),
        "duplicates": 0,
        "loaded": 0,
        "late_lines": 0,
    }


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _cents(amount: float) -> int:
    return round(amount * 100)


class _Facts:
    """What the valid, first-seen events say, gathered while the files are scanned."""

    def __init__(self, days: list[str]) -> None:
        self.channels = {
            day: {
                channel: {
                    "orders": 0,
                    "gmv": 0,
                    "discount": 0,
                    "orders_with_promotion": 0,
                    "sessions": 0,
                }
                for channel in CHANNELS
            }
            for day in days
        }
        self.ordered: set[str] = set()
        self.paid: set[str] = set()
        self.cancelled: set[str] = set()
        self.totals: dict[str, int] = {}
        self.captures: list[tuple[str, int]] = []
        self.shipped: set[str] = set()

    def add(self, source: str, day: str, event: dict[str, Any]) -> None:
        if source == SESSIONS:
            self.channels[day][event["channel"]]["sessions"] += 1
        elif source == ORDERS:
            order_id = event["order_id"]
            self.ordered.add(order_id)
            self.totals.setdefault(order_id, _cents(event["total_amount"]))
            if event["event_type"] == "order_placed":
                figures = self.channels[day][event["channel"]]
                figures["orders"] += 1
                figures["gmv"] += _cents(event["total_amount"])
                figures["discount"] += _cents(event["discount_amount"])
                figures["orders_with_promotion"] += event["promotion_code"] is not None
            elif event["event_type"] == "order_paid":
                self.paid.add(order_id)
            else:
                self.cancelled.add(order_id)
        elif source == PAYMENTS:
            if event["event_type"] == "payment_captured":
                self.captures.append((event["order_id"], _cents(event["amount"])))
        elif source == SHIPMENTS:
            self.shipped.add(event["order_id"])


def _scan_source(landing: Path, source: str, days: list[str], facts: _Facts) -> dict[str, Any]:
    partitions = {day: _partition() for day in days}
    for folder in sorted((landing / source).glob("dt=*")):
        day = folder.name.removeprefix("dt=")
        stats = partitions.setdefault(day, _partition())
        seen: set[str] = set()
        for path in sorted(folder.glob("*.jsonl")):
            late = path.name.endswith("-late.jsonl")
            lines = path.read_text(encoding="utf-8").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            stats["files"] += 1
            stats["lines"] += len(lines)
            stats["late_lines"] += len(lines) if late else 0
            for line in lines:
                verdict, event = classify(source, line)
                if event is None:
                    if verdict == "malformed":
                        stats["malformed"] += 1
                    else:
                        stats["invalid"] += 1
                        stats["invalid_by_kind"][verdict] += 1
                elif event["event_id"] in seen:
                    stats["duplicates"] += 1
                else:
                    seen.add(event["event_id"])
                    stats["loaded"] += 1
                    facts.add(source, day, event)
    totals = _partition()
    for stats in partitions.values():
        for key, value in stats.items():
            if key == "invalid_by_kind":
                for kind, count in value.items():
                    totals[key][kind] += count
            else:
                totals[key] += value
    return {
        "access": "events",
        "landing": f"landing/{source}",
        "partitions": partitions,
        "totals": totals,
    }


def _in_flight(events: Iterable[Event]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, dict[str, int]]] = {source: {} for source in EVENT_SOURCES}
    for event in events:
        per_day = counts[event.source].setdefault(event.event_day.isoformat(), {})
        due = event.delivery_day.isoformat()
        per_day[due] = per_day.get(due, 0) + 1
    return {
        source: {day: dict(sorted(dues.items())) for day, dues in sorted(per_day.items())}
        for source, per_day in counts.items()
    }


def _business_faults(
    facts: _Facts, movements: list[tuple[str, str]], in_flight: list[Event]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The breaks a reconciliation of the delivered data finds, and those in-flight events heal."""
    captured = {order_id for order_id, _ in facts.captures}
    found = {
        "paid_without_capture": sorted(facts.paid - captured),
        "amount_mismatch": sorted(
            {
                order_id
                for order_id, amount in facts.captures
                if order_id in facts.totals and amount != facts.totals[order_id]
            }
        ),
        "shipment_for_unpaid_or_cancelled": sorted(
            order_id
            for order_id in facts.shipped
            if order_id not in facts.paid or order_id in facts.cancelled
        ),
        "movement_without_order": sorted(
            movement_id for movement_id, order_id in movements if order_id not in facts.ordered
        ),
    }
    coming: dict[str, set[str]] = defaultdict(set)
    for event in in_flight:
        kind = event.payload.get("event_type", "")
        coming[kind].add(event.payload.get("order_id"))
        if event.source == ORDERS:
            coming["any_order_event"].add(event.payload["order_id"])
    orders_of = dict(movements)
    healing = {
        "paid_without_capture": [
            o for o in found["paid_without_capture"] if o in coming["payment_captured"]
        ],
        "amount_mismatch": [],
        "shipment_for_unpaid_or_cancelled": [
            o
            for o in found["shipment_for_unpaid_or_cancelled"]
            if o in coming["order_paid"] and o not in facts.cancelled
        ],
        "movement_without_order": [
            m for m in found["movement_without_order"] if orders_of[m] in coming["any_order_event"]
        ],
    }
    return found, healing


def build_manifest(
    data_dir: Path,
    seed: int,
    start: date,
    end: date,
    scale: float,
    faults: FaultRates,
    in_flight: list[Event],
) -> dict[str, Any]:
    """Read the landscape back and describe it (see docs/LANDSCAPE.md for every field)."""
    days = [day.isoformat() for day in days_between(start, end)]
    facts = _Facts(days)
    sources: dict[str, Any] = {}
    for source in EVENT_SOURCES:
        sources[source] = _scan_source(data_dir / "landing", source, days, facts)
    services = data_dir / "services"
    for source, counts in rows_by_day(services, start, end).items():
        name, table, key, access = TABLE_SOURCES[source]
        entry: dict[str, Any] = {
            "access": access,
            "database": f"services/{name}.sqlite",
            "table": table,
            "primary_key": key,
        }
        if access == "api":
            entry["endpoint"] = f"/{source}"
        entry["partitions"] = {day: {"rows": count} for day, count in counts.items()}
        entry["totals"] = {"rows": sum(counts.values())}
        sources[source] = entry
    found, healing = _business_faults(facts, sale_movements(services), in_flight)
    channels = {
        day: {
            channel: {
                key: _money(value) if key in ("gmv", "discount") else value
                for key, value in figures.items()
            }
            for channel, figures in per_channel.items()
        }
        for day, per_channel in facts.channels.items()
    }
    return {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": len(days),
        "scale": scale,
        "fault_rates": faults.as_dict(),
        "sources": sources,
        "in_flight": _in_flight(in_flight),
        "channels": channels,
        "business_faults": found,
        "business_faults_in_flight": healing,
    }


def read_manifest(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / MANIFEST_NAME).read_text(encoding="utf-8"))


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    """Write atomically: readers see the old or the new manifest, never half of one."""
    path = data_dir / MANIFEST_NAME
    temporary = path.with_name(f".{MANIFEST_NAME}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
