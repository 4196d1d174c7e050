"""Whether this is the demo, and the public stand-ins for secrets that only the demo may use.

Two settings are secrets: the PII key (`BATCH_PLATFORM_PII_SALT`) and the API bearer tokens
(each API source's own `token_env`, or `BATCH_PLATFORM_API_TOKEN` for all of them). The demo
has public stand-ins for both: a fixed PII key and the token the demo REST service accepts.
Emails hashed with a key everybody knows can be reversed by hashing a dictionary of addresses,
and a well-known token proves nothing, so the stand-ins are used only in **the demo**, which
is both:

- `BATCH_PLATFORM_ENV` is not `production` (it must be `production` or unset: a typo such as
  `prod` is refused rather than read as "not production"), and
- the data folder holds the simulator's manifest, `landscape.json`, which `batch-platform
  simulate` writes into every folder it generates: a JSON object with the simulator's
  `format_version` and `seed`. A data folder the simulator did not create is not the demo, an
  empty one included, since a fresh production folder starts empty too.

Anywhere else a missing secret is a `SettingsError`, one line naming the variable and never a
value. This module is the rule alone, without Dagster, because dbt imports it for every
invocation (`batch_platform.dbt_plugin`); `batch_platform.settings` holds the Dagster resource
that applies it when definitions load. Nothing is read at import time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from batch_platform import paths

ENV = "BATCH_PLATFORM_ENV"
PRODUCTION = "production"
PII_SALT_ENV = "BATCH_PLATFORM_PII_SALT"
SHARED_API_TOKEN_ENV = "BATCH_PLATFORM_API_TOKEN"
DEMO_PII_SALT = "batch-platform-demo-salt-not-for-production"
DEMO_API_TOKEN = "demo-token"  # what the demo REST service accepts unless told otherwise


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line naming the variable."""


def environment() -> str:
    """`production`, or "" when BATCH_PLATFORM_ENV is unset; any other value is refused."""
    value = os.environ.get(ENV, "")
    if value not in ("", PRODUCTION):
        raise SettingsError(f"{ENV} must be '{PRODUCTION}' or unset, got {value!r}")
    return value


@lru_cache(maxsize=8)
def _is_simulator_manifest(path: Path, mtime_ns: int, size: int) -> bool:
    """Keyed by modification time and size: a large landscape's manifest is megabytes, and
    every extract of a PII source asks."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "seed" in manifest


def is_demo_folder(folder: Path) -> bool:
    """Whether the simulator generated `folder`: it holds the simulator's `landscape.json`."""
    manifest = paths.landscape_manifest_path(folder)
    try:
        if not manifest.is_file():
            return False
        status = manifest.stat()
    except OSError:
        return False
    return _is_simulator_manifest(manifest, status.st_mtime_ns, status.st_size)


@dataclass(frozen=True)
class Mode:
    """Production or not, over which data folder; decides where the stand-ins may be used."""

    production: bool
    data_dir: Path

    @property
    def demo(self) -> bool:
        return not self.production and is_demo_folder(self.data_dir)

    def refuse(self, missing: list[str]) -> SettingsError:
        """The one-line error for variables that must be set here."""
        why = (
            f"{ENV}={PRODUCTION}"
            if self.production
            else f"data folder {self.data_dir} holds no demo landscape.json"
        )
        return SettingsError(
            f"{', '.join(missing)} must be set: the demo stand-ins are refused outside the demo "
            f"({why})"
        )

    def salt_problem(self, value: str | None) -> str | None:
        """What is wrong with the PII key `value` here, naming its variable; None if fine."""
        if self.demo:
            return None
        if not value:
            return PII_SALT_ENV
        if value == DEMO_PII_SALT:
            return f"{PII_SALT_ENV} (it holds the public demo key)"
        return None

    def pii_key(self, value: str | None) -> bytes:
        """The PII key from `value` (the variable's content); the demo key only in the demo."""
        if problem := self.salt_problem(value):
            raise self.refuse([problem])
        return (value or DEMO_PII_SALT).encode()

    def api_token(self, candidates: list[tuple[str, str | None]]) -> tuple[str, str] | None:
        """(token, where it came from) from the first set variable of `candidates` (name,
        value); the demo token only in the demo; None when nothing usable is set."""
        for name, value in candidates:
            if value and (self.demo or value != DEMO_API_TOKEN):
                return value, f"${name}"
        return (DEMO_API_TOKEN, "the demo default token") if self.demo else None


def current() -> Mode:
    """The mode the environment gives now."""
    return Mode(production=environment() == PRODUCTION, data_dir=paths.data_dir())


def pii_key() -> bytes:
    """The PII key from BATCH_PLATFORM_PII_SALT, read now; refused outside the demo if unset."""
    return current().pii_key(os.environ.get(PII_SALT_ENV))
