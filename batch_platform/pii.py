"""PII masking: a keyed hash, so analysts can join on a customer's email but nobody can read it.

The key (salt) comes only from the environment variable BATCH_PLATFORM_PII_SALT. It reaches
DuckDB as a Python function registered on dbt's connection (`batch_platform.dbt_plugin`), so it
never appears in SQL text, compiled models, dbt logs or Dagster's event log. Without the
variable a fixed demo key is used and a warning says so; production must set it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import warnings

SALT_ENV = "BATCH_PLATFORM_PII_SALT"
_DEMO_SALT = "batch-platform-demo-salt-not-for-production"


def salt() -> bytes:
    value = os.environ.get(SALT_ENV)
    if not value:
        warnings.warn(
            f"{SALT_ENV} is not set: masking PII with the demo key (set it in production)",
            stacklevel=2,
        )
        value = _DEMO_SALT
    return value.encode()


def mask(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised value, as 32 hex characters; NULL stays NULL."""
    if value is None:
        return None
    normalised = value.strip().lower().encode()
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()[:32]
