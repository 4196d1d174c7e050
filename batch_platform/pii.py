"""PII masking: a keyed hash, so analysts can join on a customer's email but nobody can read it.

The key (salt) comes only from the environment variable BATCH_PLATFORM_PII_SALT. It reaches
DuckDB as a Python function registered on dbt's connection (`batch_platform.dbt_plugin`), so it
never appears in SQL text, compiled models, dbt logs or Dagster's event log. Without the
variable a fixed, public demo key is used, but only in the demo; anywhere else `salt()` refuses
with one line naming the variable (`batch_platform.demo_mode`).

The same key masks the quarantine of a PII source: `mask_record` is registered on each extract's
scratch DuckDB (`batch_platform.extract.lake`), so a rejected record keeps its shape but no
readable PII, and the quarantine that dbt reads into `stg_platform__quarantine` holds none.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from batch_platform import demo_mode

SALT_ENV = demo_mode.PII_SALT_ENV


def salt() -> bytes:
    """The key, read now; outside the demo a missing (or the demo) key raises SettingsError."""
    return demo_mode.pii_key()


def mask(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised value, as 32 hex characters; NULL stays NULL."""
    if value is None:
        return None
    normalised = value.strip().lower().encode()
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()[:32]


WITHHELD = "withheld: not a JSON object, and this source holds PII"


def _mask_json_value(value: object, key: bytes) -> str | None:
    """A field value masked like `mask`: text as itself, anything else as its JSON text."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return mask(text, key)


def mask_record(text: str | None, clear: frozenset[str], key: bytes) -> str | None:
    """A quarantined record of a PII source, made safe to keep and to show.

    `text` is the record as received (a JSON line, or a database row as JSON). Every field not
    in `clear` (the contract's non-PII columns) has its value replaced by its keyed hash, so a
    PII field, and any field the contract does not know (a renamed PII field, say), never stays
    readable; the field names stay, so the record can still be diagnosed. Text that is not a
    JSON object cannot be split into fields and is withheld whole: only its size and keyed hash
    remain, and its origin and position in the quarantine lead back to the source itself.
    """
    if text is None:
        return None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        return json.dumps(
            {"withheld": WITHHELD, "bytes": len(text.encode()), "masked": mask(text, key)}
        )
    masked = {
        name: value if name in clear else _mask_json_value(value, key)
        for name, value in record.items()
    }
    return json.dumps(masked, ensure_ascii=False)
