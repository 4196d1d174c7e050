"""The inputs of a simulation that are not dates: fault rates, and the error for bad input."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


class LandscapeError(ValueError):
    """Bad input to `simulate`, raised before anything is written.

    `option` is the CLI option at fault (without dashes), so the CLI can say
    `--days must be ...` while Python callers read `days must be ...`.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option.replace('-', '_')} {message}")
        self.option = option
        self.message = message

    def cli_message(self) -> str:
        return f"--{self.option} {self.message}"


@dataclass(frozen=True)
class FaultRates:
    """How often each fault is injected. Every fault is also counted in the manifest.

    Line faults (per delivered line or event): `malformed` extra non-JSON lines,
    `contract_violation` extra JSON lines breaking the contract, `duplicate` re-delivered
    lines, `late` events delivered 1-3 days after their event day. Business faults:
    `paid_without_capture` (share of paid orders), `amount_mismatch` (share of captures),
    `shipment_for_unpaid` (share of orders), `movement_without_order` (share of sale movements).
    """

    malformed: float = 0.005
    contract_violation: float = 0.003
    duplicate: float = 0.01
    late: float = 0.02
    paid_without_capture: float = 0.01
    amount_mismatch: float = 0.01
    shipment_for_unpaid: float = 0.005
    movement_without_order: float = 0.005

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not 0 <= value <= 0.5:
                raise LandscapeError(
                    "faults", f"{field.name} must be a rate between 0 and 0.5, got {value!r}"
                )

    @classmethod
    def none(cls) -> FaultRates:
        """A clean landscape: no fault of any kind (every event on time, exactly once)."""
        return cls(**{field.name: 0.0 for field in fields(cls)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FaultRates:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LandscapeError("faults", f"has unknown fault rates: {', '.join(unknown)}")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
