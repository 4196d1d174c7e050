"""The event contracts as the simulated services know them, and how a delivered line is judged.

The services are simulated independently of the platform, so they carry their own copy of the
contract (`tests/test_simulator.py` checks it equals the dbt `_sources.yml` files). The same
rules classify every delivered line for the ground truth, in the order the platform's contract
check applies them: a line is `malformed` if it is not a JSON object; otherwise, column by
column in contract order, `missing_field` (required and absent or null), `wrong_type` (present
but not readable as the column's type), `impossible_value` (below the minimum, or not an
accepted value); the first rule broken decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ORDERS = "orders/order_events"
PAYMENTS = "payments/payment_events"
SHIPMENTS = "shipping/shipment_events"
SESSIONS = "clickstream/sessions"
EVENT_SOURCES = (ORDERS, PAYMENTS, SHIPMENTS, SESSIONS)
CHANNELS = ("mobile", "web", "mini_program")
VIOLATION_KINDS = ("missing_field", "wrong_type", "impossible_value")


@dataclass(frozen=True)
class Column:
    """One contract column. `kind` is how it is read: text, timestamp, integer, decimal, items."""

    name: str
    kind: str
    required: bool = False
    minimum: int | None = None
    accepted: tuple[str, ...] = ()


def _c(name: str, kind: str = "text", required: bool = True, **rules: Any) -> Column:
    return Column(name, kind, required, **rules)


_ORDER_STATE = (
    _c("order_id"),
    _c("customer_id"),
    _c("channel", accepted=CHANNELS),
    _c("promotion_code", required=False),
    _c("currency"),
    _c("total_amount", "decimal", minimum=0),
    _c("discount_amount", "decimal", minimum=0),
    _c("items", "items"),
)
CONTRACTS: dict[str, tuple[Column, ...]] = {
    ORDERS: (
        _c("event_id"),
        _c("event_type", accepted=("order_placed", "order_paid", "order_cancelled")),
        _c("occurred_at", "timestamp"),
        *_ORDER_STATE,
    ),
    PAYMENTS: (
        _c("event_id"),
        _c("event_type", accepted=("payment_captured", "payment_failed", "payment_refunded")),
        _c("occurred_at", "timestamp"),
        _c("payment_id"),
        _c("order_id"),
        _c("amount", "decimal", minimum=0),
        _c("currency"),
        _c("method"),
    ),
    SHIPMENTS: (
        _c("event_id"),
        _c("event_type", accepted=("shipment_dispatched", "shipment_delivered")),
        _c("occurred_at", "timestamp"),
        _c("shipment_id"),
        _c("order_id"),
        _c("carrier"),
        _c("units", "integer", minimum=1),
    ),
    SESSIONS: (
        _c("event_id"),
        _c("occurred_at", "timestamp"),
        _c("session_id"),
        _c("channel", accepted=CHANNELS),
        _c("customer_id", required=False),
        _c("page_views", "integer", minimum=1),
        _c("order_id", required=False),
    ),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_items(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict)
        and isinstance(item.get("product_id"), str)
        and isinstance(item.get("quantity"), int)
        and _is_number(item.get("unit_price"))
        for item in value
    )


_READABLE = {
    # Any JSON scalar reads as text, which is what a text column gets from a JSON extract.
    "text": lambda v: not isinstance(v, list | dict),
    "timestamp": _is_timestamp,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": _is_number,
    "items": _is_items,
}


def classify(source: str, line: str) -> tuple[str, dict[str, Any] | None]:
    """Judge one delivered line: ("valid", event), ("malformed", None) or (violation kind, None)."""
    try:
        event = json.loads(line)
    except ValueError:
        return "malformed", None
    if not isinstance(event, dict):
        return "malformed", None
    for column in CONTRACTS[source]:
        value = event.get(column.name)
        if value is None:
            if column.required:
                return "missing_field", None
            continue
        if not _READABLE[column.kind](value):
            return "wrong_type", None
        if column.minimum is not None and value < column.minimum:
            return "impossible_value", None
        if column.accepted and value not in column.accepted:
            return "impossible_value", None
    return "valid", event
