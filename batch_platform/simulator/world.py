"""The slowly changing reference data of the demo shop: products, prices, campaigns, customers.

Every value here is a pure function of (seed, start, scale, day): nothing is read back from the
generated files. That is what lets an order placed on any day be regenerated on its own, with
the price, campaign and customer it had then, and so what makes `simulate(N) + append(M)`
produce the same bytes as `simulate(N + M)`.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from batch_platform.simulator.timeline import DAY_US, HOUR_US, day_of, day_start

PRODUCT_COUNT = 200
CURRENCY = "EUR"

# category -> (lowest, highest base price in cents, product nouns)
_CATEGORIES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "electronics": (1_999, 89_900, ("Headphones", "Speaker", "Charger", "Smartwatch", "Webcam")),
    "home": (899, 24_900, ("Lamp", "Cushion", "Kettle", "Vase", "Blanket", "Cookware Set")),
    "fashion": (1_499, 19_900, ("Sneakers", "Jacket", "Scarf", "Backpack", "T-Shirt", "Jeans")),
    "beauty": (499, 8_900, ("Face Cream", "Shampoo", "Perfume", "Lip Balm", "Serum")),
    "sports": (999, 39_900, ("Yoga Mat", "Dumbbells", "Running Belt", "Bike Light", "Bottle")),
    "toys": (699, 12_900, ("Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite")),
    "books": (799, 4_900, ("Cookbook", "Novel", "Travel Guide", "Atlas", "Notebook")),
    "grocery": (199, 2_900, ("Coffee Beans", "Green Tea", "Olive Oil", "Chocolate", "Granola")),
}
_ADJECTIVES = (
    "Classic", "Compact", "Premium", "Everyday", "Eco", "Smart", "Pro", "Mini", "Deluxe",
    "Urban", "Nordic", "Vintage",
)  # fmt: skip
# A price change moves a product to its base price times one of these (sales and increases).
_PRICE_FACTORS = (0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2)


def _charm_price(cents: float) -> int:
    """Round to a shop-like price ending in .99 or .49 (never below 0.49)."""
    euros = max(int(cents) // 100, 0)
    return max(euros * 100 + (99 if cents - euros * 100 >= 50 else 49), 49)


@dataclass(frozen=True)
class Catalog:
    """The fixed product range (created on the start day) and how popular each product is."""

    product_ids: tuple[str, ...]
    skus: tuple[str, ...]
    names: tuple[str, ...]
    categories: tuple[str, ...]
    base_cents: tuple[int, ...]
    cum_weights: tuple[float, ...]  # popularity, for random.choices(cum_weights=...)

    @classmethod
    def build(cls, seed: int) -> Catalog:
        rng = random.Random(f"{seed}:catalog")
        categories = list(_CATEGORIES)
        ids, skus, names, cats, prices = [], [], [], [], []
        for number in range(1, PRODUCT_COUNT + 1):
            category = rng.choice(categories)
            low, high, nouns = _CATEGORIES[category]
            ids.append(f"prd-{number:04d}")
            skus.append(f"{category[:3].upper()}-{number:05d}")
            model = f"{rng.choice('ABCDEFGHKLMNPRSTVX')}{rng.randint(1, 9)}"
            names.append(f"{rng.choice(_ADJECTIVES)} {rng.choice(nouns)} {model}")
            cats.append(category)
            # Log-uniform: many cheap products, a few expensive ones.
            prices.append(_charm_price(low * (high / low) ** rng.random()))
        ranks = list(range(PRODUCT_COUNT))
        rng.shuffle(ranks)
        # Zipf-like popularity: a handful of hot sellers, a long tail.
        weights = [1.0 / (rank + 1) ** 0.9 for rank in ranks]
        return cls(
            tuple(ids),
            tuple(skus),
            tuple(names),
            tuple(cats),
            tuple(prices),
            tuple(itertools.accumulate(weights)),
        )

    def share(self, index: int) -> float:
        """The fraction of all order lines that pick product `index` (first pick of a basket)."""
        previous = self.cum_weights[index - 1] if index else 0.0
        return (self.cum_weights[index] - previous) / self.cum_weights[-1]


class PriceBook:
    """Each product's price at any instant: its base price, changed a few times a day.

    A change sets the price to base x factor, independent of earlier changes, so a day's
    changes are a pure function of (seed, day). The opening prices of a day are the result of
    all earlier days' changes and are memoised as generation walks forward.
    """

    def __init__(self, seed: int, start: date, catalog: Catalog) -> None:
        self._seed = seed
        self._start = start
        self._catalog = catalog
        self._opening: dict[date, tuple[int, ...]] = {start: catalog.base_cents}
        self._changes: dict[date, tuple[tuple[int, int, int], ...]] = {}

    def changes(self, day: date) -> tuple[tuple[int, int, int], ...]:
        """The price changes of `day` as (at_us, product index, new price cents), in time order.

        None on the start day: the catalog goes live with its base prices.
        """
        if day not in self._changes:
            result: list[tuple[int, int, int]] = []
            if day > self._start:
                rng = random.Random(f"{self._seed}:{day.isoformat()}:prices")
                count = rng.randint(2, 6)
                for index in sorted(rng.sample(range(PRODUCT_COUNT), count)):
                    at = day_start(day) + rng.randrange(8 * HOUR_US, 20 * HOUR_US)
                    factor = rng.choice(_PRICE_FACTORS)
                    result.append(
                        (at, index, _charm_price(self._catalog.base_cents[index] * factor))
                    )
            self._changes[day] = tuple(sorted(result))
        return self._changes[day]

    def opening(self, day: date) -> tuple[int, ...]:
        """Every product's price at 00:00 of `day`."""
        if day in self._opening:
            return self._opening[day]
        known = max(d for d in self._opening if d <= day)
        while known < day:
            prices = list(self._opening[known])
            for _, index, cents in self.changes(known):
                prices[index] = cents
            known += timedelta(days=1)
            self._opening[known] = tuple(prices)
        return self._opening[day]

    def price_at(self, index: int, at_us: int) -> int:
        """The price in cents a customer paid for product `index` at instant `at_us`."""
        day = day_of(at_us)
        cents = self.opening(day)[index]
        for changed_at, changed, new_cents in self.changes(day):
            if changed_at > at_us:
                break
            if changed == index:
                cents = new_cents
        return cents


@dataclass(frozen=True)
class Campaign:
    """A promotion with a recurring window: window k runs [start+offset+k*period, +length-1].

    The promotions service publishes (updates in place) window k two days before it starts, so
    its row always shows the current or next window. `period` None means it never renews.
    """

    code: str
    name: str
    discount_pct: Decimal
    offset: int
    length: int
    period: int | None

    def window(self, start: date, k: int) -> tuple[date, date]:
        first = start + timedelta(days=self.offset + k * (self.period or 0))
        return first, first + timedelta(days=self.length - 1)

    def publish_day(self, start: date, k: int) -> date:
        """The day the service writes window k (window 0 goes live with the service)."""
        return start if k == 0 else self.window(start, k)[0] - timedelta(days=2)

    def window_index_on(self, start: date, day: date) -> int:
        """The window the service's row shows at the end of `day`."""
        if self.period is None:
            return 0
        k = 0
        while self.publish_day(start, k + 1) <= day:
            k += 1
        return k

    def active_on(self, start: date, day: date) -> bool:
        first, last = self.window(start, self.window_index_on(start, day))
        return first <= day <= last


def build_campaigns(start: date) -> tuple[Campaign, ...]:
    """The ten campaigns. Two run all the time; the others come back on their own rhythm."""
    saturday = (5 - start.weekday()) % 7
    rows = (
        ("WELCOME10", "Welcome offer for new customers", "10", 0, 3650, None),
        ("LOYALTY5", "Loyalty club reward", "5", 0, 3650, None),
        ("WEEKEND15", "Weekend flash sale", "15", saturday, 2, 7),
        ("APPWEEK12", "App week", "12.5", 3, 7, 28),
        ("BUNDLE8", "Bundle and save", "8", 1, 10, 30),
        ("MIDNIGHT25", "Midnight madness", "25", 6, 1, 11),
        ("SPRING20", "Spring sale", "20", 9, 14, 91),
        ("STUDENT10", "Student offer", "10", 14, 30, 60),
        ("SHIPFREE5", "Free shipping week", "5", 20, 7, 35),
        ("VIP30", "VIP private sale", "30", 27, 3, 45),
    )
    return tuple(
        Campaign(code, name, Decimal(pct), offset, length, period)
        for code, name, pct, offset, length, period in rows
    )


def discount_cents(subtotal_cents: int, discount_pct: Decimal) -> int:
    """round(subtotal * pct / 100, 2), rounding halves up as SQL's round() on decimals does."""
    exact = Decimal(subtotal_cents) * discount_pct / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


_FIRST_NAMES = (
    "Anna", "Lukas", "Sofia", "Jonas", "Emma", "Noah", "Mia", "Elias", "Léa", "Hugo", "Chloé",
    "Louis", "Giulia", "Marco", "Lucía", "Mateo", "Sanne", "Daan", "Zoë", "Jürgen", "Ines",
    "Tomás", "Maja", "Oskar", "Elif", "Can", "Aoife", "Liam", "Freya", "Nils",
)  # fmt: skip
_LAST_NAMES = (
    "Schmidt", "Müller", "Dubois", "Martin", "Rossi", "Bianchi", "García", "Fernández", "de Vries",
    "Jansen", "Nowak", "Kowalski", "Novák", "Andersson", "Nielsen", "O'Brien", "Murphy", "Weber",
    "Fischer", "Lefèvre", "Moreau", "Costa", "Silva", "Yilmaz", "Horvat", "Keller", "Bauer",
    "Lindqvist", "Romano", "Petit",
)  # fmt: skip
# country -> (weight, phone prefix)
_COUNTRIES = {
    "DE": (30, "+49 15"),
    "FR": (20, "+33 6"),
    "IT": (12, "+39 3"),
    "ES": (12, "+34 6"),
    "NL": (10, "+31 6"),
    "PL": (8, "+48 5"),
    "AT": (5, "+43 66"),
    "IE": (3, "+353 8"),
}
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass(frozen=True)
class Person:
    """A customer's contact details as first registered (PII: realistic but fictitious)."""

    first: str
    last: str
    country: str
    phone: str | None
    domain: str

    def email(self, number: int, domain: str | None = None) -> str:
        """Unique by construction: the local part ends in the customer number."""
        return f"{_ascii(self.first)}.{_ascii(self.last)}{number}@{domain or self.domain}"


def _phone(rng: random.Random, country: str) -> str:
    return f"{_COUNTRIES[country][1]}{rng.randint(0, 9)} {rng.randint(1_000_000, 9_999_999)}"


class CustomerBook:
    """Who the customers are and when they join or change, by customer number and day.

    Customer numbers are 1-based and dense: the start day opens with `initial` customers, and
    each day adds a few with the next numbers. Orders and sessions of a day pick among the
    customers that existed at 00:00 that day.
    """

    def __init__(self, seed: int, start: date, scale: float) -> None:
        self._seed = seed
        self._start = start
        self._scale = scale
        self.initial = max(1, round(2000 * scale))
        self._count_at: dict[date, int] = {start: self.initial}

    @staticmethod
    def customer_id(number: int) -> str:
        return f"cus-{number:07d}"

    def person(self, number: int) -> Person:
        rng = random.Random(f"{self._seed}:customer:{number}")
        countries = list(_COUNTRIES)
        country = rng.choices(countries, weights=[_COUNTRIES[c][0] for c in countries])[0]
        phone = _phone(rng, country) if rng.random() < 0.9 else None
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        return Person(first, last, country, phone, rng.choice(_EMAIL_DOMAINS))

    def initial_created_at(self, number: int) -> int:
        """Existing customers registered some time in the three years before the start."""
        rng = random.Random(f"{self._seed}:customer:{number}:created")
        return day_start(self._start) - rng.randrange(DAY_US // 10, 3 * 365 * DAY_US)

    def _day_rng(self, day: date) -> random.Random:
        return random.Random(f"{self._seed}:{day.isoformat()}:customers")

    def _about(self, rng: random.Random, mean: float) -> int:
        """A count near `mean` (±30 %), rounded at random so small scales still see some."""
        value = mean * self._scale * rng.uniform(0.7, 1.3)
        return int(value) + (rng.random() < value - int(value))

    def count_at(self, day: date) -> int:
        """How many customers existed at 00:00 of `day`."""
        if day in self._count_at:
            return self._count_at[day]
        known = max(d for d in self._count_at if d <= day)
        while known < day:
            count = self._count_at[known] + len(self.changes(known)[0])
            known += timedelta(days=1)
            self._count_at[known] = count
        return self._count_at[day]

    def changes(self, day: date) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
        """The day's sign-ups [(at_us, number)] and profile edits [(at_us, number, field)].

        Edits touch customers that existed at 00:00; `field` is email, phone, full_name or
        country. Sign-ups are numbered in time order after the existing customers.
        """
        rng = self._day_rng(day)
        base = day_start(day) + 1
        new_count = self._about(rng, 20)
        times = sorted(base + rng.randrange(6 * HOUR_US, DAY_US - 1) for _ in range(new_count))
        first_new = self.count_at(day)
        signups = [(at, first_new + 1 + n) for n, at in enumerate(times)]
        edits = []
        existing = first_new
        edit_count = min(self._about(rng, 30), existing)
        for number in rng.sample(range(1, existing + 1), edit_count):
            at = base + rng.randrange(6 * HOUR_US, DAY_US - 1)
            field = rng.choices(("email", "phone", "full_name", "country"), (4, 4, 1, 1))[0]
            edits.append((at, number, field))
        return signups, sorted(edits)

    def edited_value(self, day: date, number: int, field: str) -> str:
        """The new value of an edited field (independent of earlier edits, so it needs no state)."""
        rng = random.Random(f"{self._seed}:{day.isoformat()}:customer:{number}:{field}")
        person = self.person(number)
        if field == "email":
            return person.email(number, rng.choice(_EMAIL_DOMAINS))
        if field == "phone":
            return _phone(rng, person.country)
        if field == "full_name":
            return f"{person.first} {rng.choice(_LAST_NAMES)}"
        return rng.choices(list(_COUNTRIES), weights=[w for w, _ in _COUNTRIES.values()])[0]


@dataclass
class World:
    """Everything that is not an event: built once per simulate call from the manifest inputs."""

    seed: int
    start: date
    scale: float

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.build(self.seed)

    @cached_property
    def prices(self) -> PriceBook:
        return PriceBook(self.seed, self.start, self.catalog)

    @cached_property
    def campaigns(self) -> tuple[Campaign, ...]:
        return build_campaigns(self.start)

    @cached_property
    def customers(self) -> CustomerBook:
        return CustomerBook(self.seed, self.start, self.scale)

    @cached_property
    def _active(self) -> dict[date, tuple[Campaign, ...]]:
        return {}

    def active_campaigns(self, day: date) -> tuple[Campaign, ...]:
        """Campaigns whose window contains `day` (memoised: asked once per order)."""
        if day not in self._active:
            self._active[day] = tuple(c for c in self.campaigns if c.active_on(self.start, day))
        return self._active[day]
