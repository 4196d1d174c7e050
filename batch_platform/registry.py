"""The source registry: every microservice table the platform extracts, declared once.

The declarations live in the dbt sources (`dbt_project/models/staging/<service>/_sources.yml`):
a source is a service, a source table is one extract. `config.meta.extract` says how to reach
it, the columns are the contract. dbt and Dagster therefore share one truth, and adding a
service is a YAML change: the extract factory builds one asset per entry found here.

An entry that cannot be extracted safely (unknown access method, a column without a type, an
identifier or path pattern that could escape its place) stops the code location from loading,
with a message naming the entry. We chose loud over partial: a registry error is a code
change under review, and `dg check defs` in CI catches it before it reaches anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

AccessMethod = Literal["events", "database", "api"]
ACCESS_METHODS: tuple[str, ...] = ("events", "database", "api")

# Starts with a letter: names with a leading underscore are the platform's own (contract.py).
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_LANDING_PATTERN = re.compile(r"^[A-Za-z0-9_./=*{}-]+$")
_API_PATH = re.compile(r"^/[A-Za-z0-9_/-]*$")


class RegistryError(ValueError):
    """A registry entry that cannot be extracted safely; the message names the entry."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a source's contract."""

    name: str
    data_type: str  # canonical DuckDB type, e.g. DECIMAL(12,2)
    required: bool = False
    pii: bool = False
    accepted_values: tuple[str, ...] = ()
    minimum: float | None = None
    description: str = ""

    @property
    def is_nested(self) -> bool:
        """Lists and structs are read from JSON as JSON, scalars as text."""
        return self.data_type.endswith("]") or self.data_type.startswith(("STRUCT", "MAP"))


@dataclass(frozen=True)
class SourceSpec:
    """Everything the platform knows about one source table."""

    service: str
    entity: str
    access: AccessMethod
    description: str
    owner: str
    service_url: str | None
    primary_key: str
    event_time: str
    watermark: str | None
    columns: tuple[ColumnSpec, ...]
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """`<service>__<entity>`, the dbt-style name used for asset and check names."""
        return f"{self.service}__{self.entity}"

    @property
    def path(self) -> str:
        """`<service>/<entity>`, the folder of this source in the lake and in the manifest."""
        return f"{self.service}/{self.entity}"

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii)

    @property
    def nested_columns(self) -> tuple[str, ...]:
        """Lists and structs, in contract order: the columns read from JSON as JSON."""
        return tuple(c.name for c in self.columns if c.is_nested)


def _fail(entry: str, message: str) -> RegistryError:
    return RegistryError(f"registry entry '{entry}': {message}")


def _identifier(entry: str, what: str, value: Any) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise _fail(
            entry, f"{what} must be a lower-case identifier ([a-z][a-z0-9_]*), got {value!r}"
        )
    return value


def _duckdb_type(entry: str, column: str, value: Any) -> str:
    """Parse a declared type with DuckDB's own type parser; nothing is executed."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(entry, f"column '{column}' needs a data_type (a DuckDB type such as varchar)")
    try:
        return str(duckdb.sqltype(value))
    except Exception:
        message = f"column '{column}' has data_type {value!r}, which is not a DuckDB type"
        raise _fail(entry, message) from None


def _column(entry: str, raw: dict[str, Any]) -> ColumnSpec:
    name = _identifier(entry, "a column name", raw.get("name"))
    meta = {**(raw.get("meta") or {}), **((raw.get("config") or {}).get("meta") or {})}
    accepted = meta.get("accepted_values") or ()
    if not isinstance(accepted, list | tuple) or not all(isinstance(v, str) for v in accepted):
        raise _fail(entry, f"column '{name}': accepted_values must be a list of strings")
    minimum = meta.get("min")
    if minimum is not None and not isinstance(minimum, int | float):
        raise _fail(entry, f"column '{name}': min must be a number, got {minimum!r}")
    return ColumnSpec(
        name=name,
        data_type=_duckdb_type(entry, name, raw.get("data_type")),
        required=bool(meta.get("required", False)),
        pii=bool(meta.get("pii", False)),
        accepted_values=tuple(accepted),
        minimum=minimum,
        description=raw.get("description") or "",
    )


def _options(entry: str, access: str, extract: dict[str, Any]) -> dict[str, str]:
    """Validate the access-method specific settings; each is checked for what it may hold."""
    if access == "events":
        landing = extract.get("landing")
        if (
            not isinstance(landing, str)
            or not _LANDING_PATTERN.match(landing)
            or landing.startswith("/")
            or ".." in landing.split("/")
            or "{date}" not in landing
            or landing.replace("{date}", "").count("{") + landing.count("}") > 1
        ):
            raise _fail(
                entry,
                "events need meta.extract.landing, a relative path pattern under the landing "
                "folder containing {date} (e.g. orders/order_events/dt={date}/*.jsonl), "
                f"got {landing!r}",
            )
        return {"landing": landing}
    if access == "database":
        env = extract.get("connection_env")
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise _fail(entry, f"database sources need meta.extract.connection_env, got {env!r}")
        return {
            "connection_env": env,
            "connection_default": str(extract.get("connection_default") or ""),
            "table": _identifier(entry, "meta.extract.table", extract.get("table")),
        }
    # api
    options: dict[str, str] = {}
    for key in ("base_url_env", "token_env"):
        value = extract.get(key)
        if not isinstance(value, str) or not _ENV_NAME.match(value):
            raise _fail(entry, f"api sources need meta.extract.{key}, got {value!r}")
        options[key] = value
    path = extract.get("path")
    if not isinstance(path, str) or not _API_PATH.match(path):
        raise _fail(entry, f"api sources need meta.extract.path like /products, got {path!r}")
    options["path"] = path
    options["base_url_default"] = str(extract.get("base_url_default") or "")
    return options


def spec_from_manifest_source(source: dict[str, Any]) -> SourceSpec | None:
    """Build the spec of one dbt manifest source node; None if it is not an extract."""
    entry = f"{source.get('source_name')}.{source.get('name')}"
    meta = {**(source.get("meta") or {}), **((source.get("config") or {}).get("meta") or {})}
    extract = meta.get("extract")
    if extract is None:
        return None
    if not isinstance(extract, dict):
        raise _fail(entry, "meta.extract must be a mapping")
    service = _identifier(entry, "the source name (service)", source.get("source_name"))
    entity = _identifier(entry, "the table name (entity)", source.get("name"))
    access = extract.get("access")
    if access not in ACCESS_METHODS:
        raise _fail(
            entry, f"meta.extract.access must be one of {', '.join(ACCESS_METHODS)}, got {access!r}"
        )
    raw_columns = list((source.get("columns") or {}).values())
    if not raw_columns:
        raise _fail(entry, "the contract needs at least one column with a data_type")
    columns = tuple(_column(entry, c) for c in raw_columns)
    names = {c.name for c in columns}
    primary_key = _identifier(entry, "meta.extract.primary_key", extract.get("primary_key"))
    event_time = _identifier(entry, "meta.extract.event_time", extract.get("event_time"))
    watermark = extract.get("watermark")
    for what, column in (
        ("primary_key", primary_key),
        ("event_time", event_time),
        ("watermark", watermark),
    ):
        if column is not None and column not in names:
            raise _fail(
                entry, f"meta.extract.{what} names column {column!r}, which is not in the contract"
            )
    source_meta = source.get("source_meta") or {}
    return SourceSpec(
        service=service,
        entity=entity,
        access=access,
        description=(source.get("description") or "").strip(),
        owner=str(extract.get("owner") or "team:data-platform"),
        service_url=meta.get("service_url") or source_meta.get("service_url"),
        primary_key=primary_key,
        event_time=event_time,
        watermark=watermark,
        columns=columns,
        options=_options(entry, access, extract),
    )


def load_registry(manifest: dict[str, Any]) -> list[SourceSpec]:
    """Every extract declared in the dbt manifest, in a stable order."""
    specs = []
    for unique_id in sorted(manifest.get("sources", {})):
        spec = spec_from_manifest_source(manifest["sources"][unique_id])
        if spec is not None:
            specs.append(spec)
    return specs
