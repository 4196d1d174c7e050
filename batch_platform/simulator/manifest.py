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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batch_platform import paths
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


def _instant(text: str) -> datetime:
    """An event's `occurred_at` as the warehouse reads it: a naive UTC timestamp."""
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass
class _Order:
    """What an order's loaded order events say, by the rule `fct_orders` documents: the order's
    day is its `order_placed` event's day, else (placement still in flight) the day of its first
    order event; its lines are those of the `order_placed` event, else of its first event
    (every order event carries the whole order)."""

    chosen: tuple[bool, datetime, str]  # (not order_placed, occurred_at, event_id) of the source
    items: list[dict[str, Any]]
    placed_at: datetime | None
    first_at: datetime

    @property
    def day(self) -> str:
        return (self.placed_at or self.first_at).date().isoformat()


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
        self.orders: dict[str, _Order] = {}
        # The earliest payment or shipment event per order: the day of an order the orders
        # service has not reported yet.
        self.other_first_at: dict[str, datetime] = {}
        # shipment_id -> (occurred_at, event_id, order_id, units) of its first event.
        self.shipments: dict[str, tuple[datetime, str, str, int]] = {}

    def _order_event(self, event: dict[str, Any]) -> None:
        at = _instant(event["occurred_at"])
        placed = event["event_type"] == "order_placed"
        key = (not placed, at, event["event_id"])
        known = self.orders.get(event["order_id"])
        if known is None:
            self.orders[event["order_id"]] = _Order(key, event["items"], at if placed else None, at)
            return
        if key < known.chosen:
            known.chosen, known.items = key, event["items"]
        if placed and (known.placed_at is None or at < known.placed_at):
            known.placed_at = at
        known.first_at = min(known.first_at, at)

    def _other_event(self, source: str, event: dict[str, Any]) -> None:
        at, order_id = _instant(event["occurred_at"]), event["order_id"]
        if order_id not in self.other_first_at or at < self.other_first_at[order_id]:
            self.other_first_at[order_id] = at
        if source == SHIPMENTS:
            first = (at, event["event_id"], order_id, event["units"])
            known = self.shipments.get(event["shipment_id"])
            if known is None or first[:2] < known[:2]:
                self.shipments[event["shipment_id"]] = first

    def add(self, source: str, day: str, event: dict[str, Any]) -> None:
        if source == SESSIONS:
            self.channels[day][event["channel"]]["sessions"] += 1
        elif source == ORDERS:
            order_id = event["order_id"]
            self.ordered.add(order_id)
            self._order_event(event)
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
            self._other_event(source, event)
            if event["event_type"] == "payment_captured":
                self.captures.append((event["order_id"], _cents(event["amount"])))
        elif source == SHIPMENTS:
            self._other_event(source, event)
            self.shipped.add(event["order_id"])

    def order_days(self, days: list[str]) -> dict[str, dict[str, int]]:
        """Per order day: the orders the orders service reported, how many of them still lack
        their `order_placed` event, their lines, units ordered and units shipped (each shipment
        counted once, with the units of its first event)."""
        keys = ("orders", "placement_unknown", "line_count", "units_ordered", "units_shipped")
        result = {day: dict.fromkeys(keys, 0) for day in days}
        for order in self.orders.values():
            figures = result[order.day]  # events are filed by their day, all inside `days`
            figures["orders"] += 1
            figures["placement_unknown"] += order.placed_at is None
            figures["line_count"] += len(order.items)
            figures["units_ordered"] += sum(item["quantity"] for item in order.items)
        for _, _, order_id, units in self.shipments.values():
            if order_id in self.orders:
                result[self.orders[order_id].day]["units_shipped"] += units
        return result

    def order_day(self, order_id: str) -> str:
        """The day a break about this order is reported on: the order's day, or, while the
        orders service has reported nothing, the day of its first payment or shipment event."""
        if order_id in self.orders:
            return self.orders[order_id].day
        return self.other_first_at[order_id].date().isoformat()


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
    facts: _Facts, sales: list[tuple[str, str, str]], in_flight: list[Event]
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, dict[str, str]]]:
    """The breaks a reconciliation of the delivered data finds, those in-flight events heal, and
    the day each break is reported on."""
    movements = [(movement_id, order_id) for movement_id, order_id, _ in sales]
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
    moved_on = {movement_id: day for movement_id, _, day in sales}
    days = {
        kind: {
            key: moved_on[key] if kind == "movement_without_order" else facts.order_day(key)
            for key in keys
        }
        for kind, keys in found.items()
    }
    return found, healing, days


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
        sources[source] = _scan_source(paths.landing_dir(data_dir), source, days, facts)
    services = paths.services_dir(data_dir)
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
    found, healing, fault_days = _business_faults(facts, sale_movements(services), in_flight)
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
        "orders": facts.order_days(days),
        "business_faults": found,
        "business_faults_in_flight": healing,
        "business_fault_days": fault_days,
    }


def read_manifest(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / MANIFEST_NAME).read_text(encoding="utf-8"))


def write_manifest(data_dir: Path, manifest: dict[str, Any]) -> None:
    """Write atomically: readers see the old or the new manifest, never half of one."""
    path = data_dir / MANIFEST_NAME
    temporary = path.with_name(f".{MANIFEST_NAME}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
