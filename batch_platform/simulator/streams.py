"""What happens because of one day's visits: sessions, orders and their whole lifecycle.

An *origin day* is the day a visitor session starts. Everything that follows from it (the
order, payment, shipment, refund, stock movements) is generated from that day's seed alone, with
each event stamped with its event time and the day the outbox relay delivers it. A delivery
day then picks the events due that day from the origin days that can still produce them
(`LOOKBACK_DAYS`), so the output never depends on how many days one call generates.

Each order draws from its own RNG (seeded by its id), so changing a business-fault rate changes
the fate of the orders it hits and nothing else; whether an event is late depends on its own id.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from batch_platform.simulator.contract import ORDERS, PAYMENTS, SESSIONS, SHIPMENTS
from batch_platform.simulator.options import FaultRates
from batch_platform.simulator.timeline import (
    HOUR_US,
    MINUTE_US,
    SECOND_US,
    day_of,
    day_start,
    event_timestamp,
)
from batch_platform.simulator.world import CURRENCY, PRODUCT_COUNT, World, discount_cents

# The latest event of an order (a refund) comes at most 6 days after its session started, and
# a late delivery adds at most 3 days: a delivery day needs the origin days up to 9 days back.
MAX_EVENT_DAYS = 6
MAX_LATE_DAYS = 3
LOOKBACK_DAYS = MAX_EVENT_DAYS + MAX_LATE_DAYS

SESSIONS_PER_DAY = 4000
CHANNEL_SHARE = {"mobile": 0.50, "web": 0.35, "mini_program": 0.15}
# Share of sessions that end in an order; together ~25 %, i.e. ~1000 orders a day at scale 1.
CONVERSION = {"mobile": 0.28, "web": 0.20, "mini_program": 0.27}
PROMOTION_SHARE = 0.20
# Visits per UTC hour (relative): a night dip, an evening peak.
_HOURLY = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.0, 3.5, 3.8, 4.0,
    4.2, 4.0, 3.8, 3.8, 4.0, 4.5, 5.2, 6.0, 6.2, 5.5, 4.0, 2.5,
)  # fmt: skip
_WEEKDAY = (0.95, 0.93, 0.97, 1.0, 1.05, 1.12, 1.1)  # Monday .. Sunday
_METHODS = {
    "mobile": (("card", "wallet", "bank_transfer"), (50, 40, 10)),
    "web": (("card", "wallet", "bank_transfer"), (65, 20, 15)),
    "mini_program": (("wallet", "card"), (85, 15)),
}
_CARRIERS = (("DHL", "DPD", "GLS", "UPS", "PostNL"), (35, 20, 20, 15, 10))
# Order fates when no business fault applies: paid, payment failed, cancelled before paying,
# and pending (placed, never paid: an abandoned bank transfer).
_FATES = (("paid", "failed", "cancelled", "pending"), (95, 2, 2, 1))
REFUND_SHARE = 0.01


@dataclass(frozen=True)
class Event:
    """One event as its service's outbox holds it. `payload` is in contract column order."""

    source: str
    occurred_us: int
    delivery_day: date
    payload: dict[str, Any]

    @property
    def event_day(self) -> date:
        return day_of(self.occurred_us)


@dataclass(frozen=True)
class Movement:
    """A stock movement the inventory service records because of an order."""

    occurred_us: int
    product_id: str
    order_id: str
    quantity: int
    reason: str


@dataclass
class OriginDay:
    """Everything one day's sessions cause, indexed for the delivery days that need it."""

    day: date
    events_by_delivery: dict[date, list[Event]] = field(default_factory=lambda: defaultdict(list))
    movements_by_day: dict[date, list[Movement]] = field(default_factory=lambda: defaultdict(list))


def _new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def lateness(event_id: str, late_rate: float) -> int:
    """Days after its event day the relay delivers an event: 0, or 1-3 for a late one.

    Decided by the event id's own random bits (low 48 for the coin, top 32 for the delay), so
    whether an event is late never depends on which other events exist.
    """
    bits = int(event_id.replace("-", ""), 16)
    if (bits & 0xFFFF_FFFF_FFFF) / 2**48 >= late_rate:
        return 0
    return 1 + (bits >> 96) % MAX_LATE_DAYS


def _cents(value: int) -> float:
    """Cents as a JSON number with at most two decimals (n/100 prints exactly as written)."""
    return value / 100


class OriginDayBuilder:
    """Generates the OriginDay of one day; the late and business-fault rates apply."""

    def __init__(self, world: World, faults: FaultRates) -> None:
        self._world = world
        self._faults = faults

    def build(self, day: date) -> OriginDay:
        world = self._world
        origin = OriginDay(day)
        stamp = day.strftime("%Y%m%d")
        rng = random.Random(f"{world.seed}:{day.isoformat()}:sessions")
        mean = SESSIONS_PER_DAY * world.scale * _WEEKDAY[day.weekday()]
        count = max(1, round(mean * rng.uniform(0.95, 1.05)))
        hours = rng.choices(range(24), weights=_HOURLY, k=count)
        base = day_start(day)
        starts = sorted(base + h * HOUR_US + rng.randrange(HOUR_US) for h in hours)
        customers = world.customers.count_at(day)
        channels, shares = list(CHANNEL_SHARE), list(CHANNEL_SHARE.values())
        order_number = 0

        def emit(source: str, at: int, payload: dict[str, Any]) -> None:
            due = day_of(at) + timedelta(days=lateness(payload["event_id"], self._faults.late))
            origin.events_by_delivery[due].append(Event(source, at, due, payload))

        for number, started in enumerate(starts, start=1):
            channel = rng.choices(channels, weights=shares)[0]
            converts = rng.random() < CONVERSION[channel]
            signed_in = rng.random() < 0.55
            browsing_customer = rng.randrange(1, customers + 1)
            page_views = 1 + int(rng.expovariate(1 / 3))
            event_id = _new_id(rng)
            order_id = customer_id = None
            if converts:
                order_number += 1
                order_id = f"ord-{stamp}-{order_number:06d}"
                customer_id = self._order(origin, emit, order_id, started, channel, customers)
                page_views += 3
            elif signed_in:
                customer_id = world.customers.customer_id(browsing_customer)
            session = {
                "event_id": event_id,
                "occurred_at": event_timestamp(started),
                "session_id": f"ses-{stamp}-{number:06d}",
                "channel": channel,
                "customer_id": customer_id,
                "page_views": page_views,
                "order_id": order_id,
            }
            emit(SESSIONS, started, session)
        return origin

    def _order(
        self,
        origin: OriginDay,
        emit: Callable[[str, int, dict[str, Any]], None],
        order_id: str,
        started: int,
        channel: str,
        customers: int,
    ) -> str:
        """Generate one order's events and stock movements; returns its customer id."""
        world, faults = self._world, self._faults
        rng = random.Random(f"{world.seed}:{order_id}")
        placed = started + rng.randrange(MINUTE_US, 20 * MINUTE_US)
        customer_id = world.customers.customer_id(rng.randrange(1, customers + 1))
        lines = rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0]
        products: list[int] = []
        while len(products) < lines:
            pick = rng.choices(range(PRODUCT_COUNT), cum_weights=world.catalog.cum_weights)[0]
            if pick not in products:
                products.append(pick)
        items = []
        subtotal = 0
        for index in products:
            quantity = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
            price = world.prices.price_at(index, placed)
            subtotal += quantity * price
            items.append(
                {
                    "product_id": world.catalog.product_ids[index],
                    "quantity": quantity,
                    "unit_price": _cents(price),
                }
            )
        promotion_code, discount = None, 0
        active = world.active_campaigns(day_of(placed))
        if rng.random() < PROMOTION_SHARE and active:
            campaign = rng.choice(active)
            promotion_code = campaign.code
            discount = discount_cents(subtotal, campaign.discount_pct)
        total = subtotal - discount
        state = {
            "order_id": order_id,
            "customer_id": customer_id,
            "channel": channel,
            "promotion_code": promotion_code,
            "currency": CURRENCY,
            "total_amount": _cents(total),
            "discount_amount": _cents(discount),
            "items": items,
        }

        def order_event(event_type: str, at: int) -> None:
            payload = {"event_id": _new_id(rng), "event_type": event_type}
            payload["occurred_at"] = event_timestamp(at)
            emit(ORDERS, at, {**payload, **state})

        def stock(at: int, sign: int, reason: str) -> None:
            for item in items:
                origin.movements_by_day[day_of(at)].append(
                    Movement(at, item["product_id"], order_id, sign * item["quantity"], reason)
                )

        order_event("order_placed", placed)
        stock(placed, -1, "sale")
        suffix = order_id[4:]
        payment_id = f"pay-{suffix}"
        method = rng.choices(*_METHODS[channel])[0]

        def payment(event_type: str, at: int, amount: int) -> None:
            payload = {
                "event_id": _new_id(rng),
                "event_type": event_type,
                "occurred_at": event_timestamp(at),
                "payment_id": payment_id,
                "order_id": order_id,
                "amount": _cents(amount),
                "currency": CURRENCY,
                "method": method,
            }
            emit(PAYMENTS, at, payload)

        # Draw every decision up front so each rate only changes the orders it hits.
        fate = rng.choices(*_FATES)[0]
        unpaid_shipment = rng.random() < faults.shipment_for_unpaid
        no_capture = rng.random() < faults.paid_without_capture
        mismatch = rng.random() < faults.amount_mismatch
        refunded = rng.random() < REFUND_SHARE
        if unpaid_shipment:
            # Shipping dispatches an order that is not paid: still pending, or cancelled.
            fate = rng.choice(("pending", "cancelled"))
        shipped_from = None
        if fate == "paid":
            captured = placed + rng.randrange(30 * SECOND_US, 10 * MINUTE_US)
            paid = captured + rng.randrange(MINUTE_US, 30 * MINUTE_US)
            amount = total
            if mismatch:
                delta = rng.choice((1, 5, 10, 100, 500, 1000))
                amount = total + delta if total < delta or rng.random() < 0.5 else total - delta
            if not no_capture:
                payment("payment_captured", captured, amount)
            order_event("order_paid", paid)
            shipped_from = paid
        elif fate == "failed":
            failed = placed + rng.randrange(30 * SECOND_US, 10 * MINUTE_US)
            payment("payment_failed", failed, total)
            cancelled = failed + rng.randrange(MINUTE_US, 60 * MINUTE_US)
            order_event("order_cancelled", cancelled)
            stock(cancelled, 1, "adjustment")
        elif fate == "cancelled":
            cancelled = placed + rng.randrange(10 * MINUTE_US, 6 * HOUR_US)
            order_event("order_cancelled", cancelled)
            stock(cancelled, 1, "adjustment")
        if unpaid_shipment:
            shipped_from = placed
        if shipped_from is not None:
            dispatched = shipped_from + rng.randrange(2 * HOUR_US, 30 * HOUR_US)
            delivered = dispatched + rng.randrange(20 * HOUR_US, 72 * HOUR_US)
            shipment = {
                "shipment_id": f"shp-{suffix}",
                "order_id": order_id,
                "carrier": rng.choices(*_CARRIERS)[0],
                "units": sum(item["quantity"] for item in items),
            }
            for event_type, at in (
                ("shipment_dispatched", dispatched),
                ("shipment_delivered", delivered),
            ):
                payload = {
                    "event_id": _new_id(rng),
                    "event_type": event_type,
                    "occurred_at": event_timestamp(at),
                }
                emit(SHIPMENTS, at, {**payload, **shipment})
            if fate == "paid" and not no_capture and refunded:
                returned = delivered + rng.randrange(2 * HOUR_US, 20 * HOUR_US)
                payment("payment_refunded", returned, amount)
                stock(returned, 1, "adjustment")
        return customer_id


def check_bounds(origin: OriginDay) -> None:
    """Guard the lookback window: no event may be due later than LOOKBACK_DAYS after its origin.

    A violation would make output depend on how many days a call generates, breaking the
    append == full-run guarantee, so it stops generation rather than write wrong files.
    """
    limit = origin.day + timedelta(days=LOOKBACK_DAYS)
    last = max([*origin.events_by_delivery, *origin.movements_by_day], default=origin.day)
    if last > limit:
        raise RuntimeError(f"origin day {origin.day} produced events beyond its lookback window")
