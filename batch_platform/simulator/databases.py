"""The services that keep state in a database: inventory, customers, catalog and promotions.

Each is one SQLite file under `services/`, holding current state (rows updated in place, with
`updated_at`), as a service's own database would. A generated day applies that day's changes in
one transaction per database, and nothing else writes, so the same days applied in one call or
in several produce the same bytes.

Timestamps are ISO text `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), which sorts like time, so the
`updated_at` index serves the platform's incremental `updated_at >= watermark` reads.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from batch_platform.simulator.options import FaultRates
from batch_platform.simulator.streams import Movement
from batch_platform.simulator.timeline import (
    DAY_US,
    HOUR_US,
    SECOND_US,
    day_start,
    db_timestamp,
)
from batch_platform.simulator.world import PRODUCT_COUNT, World

# source -> (database file stem, table, primary key, access method)
TABLE_SOURCES = {
    "inventory/stock_movements": ("inventory", "stock_movements", "movement_id", "database"),
    "inventory/stock_levels": ("inventory", "stock_levels", "product_id", "database"),
    "customers/customers": ("customers", "customers", "customer_id", "database"),
    "catalog/products": ("catalog", "products", "product_id", "api"),
    "promotions/campaigns": ("promotions", "campaigns", "promotion_code", "api"),
}
SCHEMAS = {
    "inventory": """
        CREATE TABLE stock_movements (
            movement_id TEXT PRIMARY KEY,
            product_id TEXT NOT NULL,
            order_id TEXT,
            quantity INTEGER NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN ('sale', 'restock', 'adjustment')),
            occurred_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX stock_movements_updated_at ON stock_movements (updated_at);
        CREATE TABLE stock_levels (
            product_id TEXT PRIMARY KEY,
            on_hand INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX stock_levels_updated_at ON stock_levels (updated_at);
    """,
    "customers": """
        CREATE TABLE customers (
            customer_id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            phone TEXT,
            full_name TEXT NOT NULL,
            country TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX customers_updated_at ON customers (updated_at);
    """,
    "catalog": """
        CREATE TABLE products (
            product_id TEXT PRIMARY KEY,
            sku TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            unit_price REAL NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX products_updated_at ON products (updated_at);
    """,
    "promotions": """
        CREATE TABLE campaigns (
            promotion_code TEXT PRIMARY KEY,
            campaign_name TEXT NOT NULL,
            discount_pct REAL NOT NULL,
            starts_on TEXT NOT NULL,
            ends_on TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX campaigns_updated_at ON campaigns (updated_at);
    """,
}
# Units ordered per day at scale 1 (~1000 orders x ~1.9 lines x ~1.4 units), to size stock.
_UNITS_PER_DAY = 2600
_EDIT_SQL = {
    "email": "UPDATE customers SET email = ?, updated_at = ? WHERE customer_id = ?",
    "phone": "UPDATE customers SET phone = ?, updated_at = ? WHERE customer_id = ?",
    "full_name": "UPDATE customers SET full_name = ?, updated_at = ? WHERE customer_id = ?",
    "country": "UPDATE customers SET country = ?, updated_at = ? WHERE customer_id = ?",
}


def database_path(services: Path, name: str) -> Path:
    return services / f"{name}.sqlite"


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection, as the platform and the API server get."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


class ServiceDatabases:
    """Writable connections to the four service databases for one simulate call."""

    def __init__(self, services: Path, world: World, faults: FaultRates, create: bool) -> None:
        self._world = world
        self._faults = faults
        services.mkdir(parents=True, exist_ok=True)
        self._db: dict[str, sqlite3.Connection] = {}
        for name, schema in SCHEMAS.items():
            connection = sqlite3.connect(database_path(services, name), isolation_level=None)
            if create:
                connection.executescript(f"BEGIN;{schema}COMMIT;")
            self._db[name] = connection

    def close(self) -> None:
        for connection in self._db.values():
            connection.close()

    def apply_day(self, day: date, movements: Iterable[Movement]) -> None:
        """Apply every change of `day`, one transaction per database."""
        changes = {
            "customers": lambda db: self._customers(db, day),
            "catalog": lambda db: self._catalog(db, day),
            "promotions": lambda db: self._promotions(db, day),
            "inventory": lambda db: self._inventory(db, day, list(movements)),
        }
        for name, apply in changes.items():
            connection = self._db[name]
            connection.execute("BEGIN")
            apply(connection)
            connection.execute("COMMIT")

    def _go_live(self, day: date, row: int) -> str:
        """Rows that exist when a service goes live carry the start day's first seconds."""
        return db_timestamp(day_start(day) + row * 1000)

    def _customers(self, db: sqlite3.Connection, day: date) -> None:
        book = self._world.customers
        rows = []
        if day == self._world.start:
            for number in range(1, book.initial + 1):
                person = book.person(number)
                created = db_timestamp(book.initial_created_at(number))
                rows.append((number, person, created, self._go_live(day, number)))
        signups, edits = book.changes(day)
        for at, number in signups:
            rows.append((number, book.person(number), db_timestamp(at), db_timestamp(at)))
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    book.customer_id(number),
                    person.email(number),
                    person.phone,
                    f"{person.first} {person.last}",
                    person.country,
                    created,
                    updated,
                )
                for number, person, created, updated in rows
            ],
        )
        for at, number, field in edits:
            value = book.edited_value(day, number, field)
            db.execute(_EDIT_SQL[field], (value, db_timestamp(at), book.customer_id(number)))

    def _catalog(self, db: sqlite3.Connection, day: date) -> None:
        catalog = self._world.catalog
        if day == self._world.start:
            db.executemany(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        catalog.product_ids[i],
                        catalog.skus[i],
                        catalog.names[i],
                        catalog.categories[i],
                        catalog.base_cents[i] / 100,
                        self._go_live(day, i + 1),
                    )
                    for i in range(PRODUCT_COUNT)
                ],
            )
        db.executemany(
            "UPDATE products SET unit_price = ?, updated_at = ? WHERE product_id = ?",
            [
                (cents / 100, db_timestamp(at), catalog.product_ids[index])
                for at, index, cents in self._world.prices.changes(day)
            ],
        )

    def _promotions(self, db: sqlite3.Connection, day: date) -> None:
        start = self._world.start
        for number, campaign in enumerate(self._world.campaigns, start=1):
            if day == start:
                first, last = campaign.window(start, 0)
                db.execute(
                    "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        campaign.code,
                        campaign.name,
                        float(campaign.discount_pct),
                        first.isoformat(),
                        last.isoformat(),
                        self._go_live(day, number),
                    ),
                )
                continue
            k = campaign.window_index_on(start, day)
            if k == 0 or campaign.publish_day(start, k) != day:
                continue
            rng = random.Random(f"{self._world.seed}:{campaign.code}:{k}:published")
            at = day_start(day) + rng.randrange(9 * HOUR_US, 17 * HOUR_US)
            first, last = campaign.window(start, k)
            db.execute(
                "UPDATE campaigns SET starts_on = ?, ends_on = ?, updated_at = ? "
                "WHERE promotion_code = ?",
                (first.isoformat(), last.isoformat(), db_timestamp(at), campaign.code),
            )

    def _stock_targets(self) -> list[tuple[int, int]]:
        """(reorder point, target) per product: about 4 and 10 days of its expected sales."""
        targets = []
        for index in range(PRODUCT_COUNT):
            daily = _UNITS_PER_DAY * self._world.scale * self._world.catalog.share(index)
            targets.append((math.ceil(daily * 4) + 3, math.ceil(daily * 10) + 10))
        return targets

    def _inventory(self, db: sqlite3.Connection, day: date, movements: list[Movement]) -> None:
        """Sales and releases of the day's orders, morning restocks, stray sale movements.

        Stock levels always equal the sum of all movements of their product, stray ones
        included: the inventory service did record them, only their order does not exist.
        """
        world, catalog = self._world, self._world.catalog
        rng = random.Random(f"{world.seed}:{day.isoformat()}:inventory")
        stamp = day.strftime("%Y%m%d")
        rows: list[tuple[int, str, str | None, int, str]] = []
        targets = self._stock_targets()
        if day == world.start:
            on_hand = dict.fromkeys(catalog.product_ids, 0)
            for index, (_, target) in enumerate(targets):
                rows.append(
                    (
                        day_start(day) + index * 1000,
                        catalog.product_ids[index],
                        None,
                        target,
                        "restock",
                    )
                )
        else:
            on_hand = dict(db.execute("SELECT product_id, on_hand FROM stock_levels").fetchall())
            for index, (reorder, target) in enumerate(targets):
                product = catalog.product_ids[index]
                if on_hand[product] < reorder:
                    at = day_start(day) + 5 * HOUR_US + rng.randrange(HOUR_US)
                    rows.append((at, product, None, target - on_hand[product], "restock"))
        strays = 0
        for movement in movements:
            rows.append(
                (
                    movement.occurred_us,
                    movement.product_id,
                    movement.order_id,
                    movement.quantity,
                    movement.reason,
                )
            )
            if movement.reason == "sale" and rng.random() < self._faults.movement_without_order:
                strays += 1
                pick = rng.choices(range(PRODUCT_COUNT), cum_weights=catalog.cum_weights)[0]
                at = day_start(day) + rng.randrange(SECOND_US, DAY_US - SECOND_US)
                stray_order = f"ord-{stamp}-{900_000 + strays:06d}"
                rows.append(
                    (at, catalog.product_ids[pick], stray_order, -rng.randint(1, 2), "sale")
                )
        rows.sort(key=lambda r: (r[0], r[2] or "", r[1], r[4]))
        last_moved: dict[str, int] = {}
        inserts = []
        for number, (at, product, order_id, quantity, reason) in enumerate(rows, start=1):
            on_hand[product] += quantity
            last_moved[product] = at
            stamp_at = db_timestamp(at)
            inserts.append(
                (
                    f"mov-{stamp}-{number:06d}",
                    product,
                    order_id,
                    quantity,
                    reason,
                    stamp_at,
                    stamp_at,
                )
            )
        db.executemany("INSERT INTO stock_movements VALUES (?, ?, ?, ?, ?, ?, ?)", inserts)
        levels = [(on_hand[p], db_timestamp(at), p) for p, at in sorted(last_moved.items())]
        if day == world.start:
            db.executemany(
                "INSERT INTO stock_levels (on_hand, updated_at, product_id) VALUES (?, ?, ?)",
                levels,
            )
        else:
            db.executemany(
                "UPDATE stock_levels SET on_hand = ?, updated_at = ? WHERE product_id = ?", levels
            )


def rows_by_day(services: Path, start: date, end: date) -> dict[str, dict[str, int]]:
    """Per table source and day in [start, end): rows whose current updated_at is that day."""
    result = {}
    for source, (name, table, _, _) in TABLE_SOURCES.items():
        counts = {(start + timedelta(days=n)).isoformat(): 0 for n in range((end - start).days)}
        with closing(read_only(database_path(services, name))) as db:
            # `table` comes from the fixed TABLE_SOURCES above, never from input.
            query = f"SELECT substr(updated_at, 1, 10), count(*) FROM {table} GROUP BY 1"  # noqa: S608
            for day, count in db.execute(query):
                counts[day] = count
        result[source] = counts
    return result


def sale_movements(services: Path) -> list[tuple[str, str, str]]:
    """(movement_id, order_id, day moved) of every sale movement, for the reconciliation ground
    truth (a movement's break is reported on the day the stock moved)."""
    with closing(read_only(database_path(services, "inventory"))) as db:
        return db.execute(
            "SELECT movement_id, order_id, substr(occurred_at, 1, 10) FROM stock_movements "
            "WHERE reason = 'sale' AND order_id IS NOT NULL ORDER BY movement_id"
        ).fetchall()
