"""The contract check every extracted record goes through, whatever its access method.

Records are first staged in a scratch DuckDB table (`input`), then one SQL statement decides,
for each record, the first contract rule it breaks (or none). Valid records are typed and
de-duplicated by primary key; the others go to the quarantine with their reason. Doing this in
DuckDB keeps it vectorised (no Python loop over rows) and lets it spill to disk for big inputs.

Nothing from the registry is formatted into SQL as a value: column names are validated
identifiers and are double-quoted, types were parsed by DuckDB's own type parser, and JSON
paths, messages, accepted values, minimums and the partition window are bound parameters.
A reason quotes the offending value, except for a PII column, whose value it never shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from batch_platform.registry import ColumnSpec, SourceSpec

InputKind = Literal["json", "columns"]

# A JSON record (one landing line, one API record) longer than this is quarantined unparsed: no
# service sends a megabyte-sized event, and a hostile one must not be parsed or loaded.
MAX_RECORD_BYTES = 1_048_576


def quote_identifier(name: str) -> str:
    """Double-quote an identifier for DuckDB (doubling embedded quotes)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Params:
    """Collects bound parameters and hands out their `$pN` placeholders."""

    values: dict[str, Any]

    def bind(self, value: Any) -> str:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return f"${key}"


def _text(kind: InputKind, column: ColumnSpec, params: _Params) -> str:
    if kind == "json":
        return f"json_extract_string(raw, {params.bind('$.' + column.name)})"
    return f"CAST({quote_identifier(column.name)} AS VARCHAR)"


def _value(kind: InputKind, column: ColumnSpec, params: _Params) -> str:
    """The column's value before typing: JSON for nested types, text for scalars."""
    if kind == "json":
        function = "json_extract" if column.is_nested else "json_extract_string"
        return f"{function}(raw, {params.bind('$.' + column.name)})"
    return quote_identifier(column.name)


def typed(kind: InputKind, column: ColumnSpec, params: _Params) -> str:
    return f"TRY_CAST({_value(kind, column, params)} AS {column.data_type})"


def _got(column: ColumnSpec, text: str, params: _Params) -> str:
    """`, got <value>` after a reason; for a PII column only the fact, never the value."""
    if column.pii:
        return params.bind(" (value not shown: PII)")
    return f"{params.bind(', got ')} || left({text}, 80)"


def _rules(
    kind: InputKind, spec: SourceSpec, window: tuple[datetime, datetime], params: _Params
) -> list[str]:
    """`WHEN <broken> THEN <reason>` branches, most basic first, so a record gets one reason."""
    rules = []
    if kind == "json":
        too_large = f"record larger than {MAX_RECORD_BYTES} bytes"
        rules.append(
            f"WHEN strlen(raw) > {params.bind(MAX_RECORD_BYTES)} THEN "
            f"{params.bind(too_large + ', got ')} || CAST(strlen(raw) AS VARCHAR)"
        )
        rules.append(f"WHEN NOT json_valid(raw) THEN {params.bind('malformed JSON')}")
        rules.append(
            f"WHEN json_type(raw::JSON) <> 'OBJECT' THEN {params.bind('not a JSON object')}"
        )
    for column in spec.columns:
        text = _text(kind, column, params)
        if column.required:
            rules.append(
                f"WHEN {text} IS NULL THEN {params.bind('missing required field ' + column.name)}"
            )
        value = typed(kind, column, params)
        rules.append(
            f"WHEN {text} IS NOT NULL AND {value} IS NULL THEN "
            f"{params.bind(f'{column.name}: expected {column.data_type}')} || "
            f"{_got(column, text, params)}"
        )
        if column.minimum is not None:
            rules.append(
                f"WHEN {value} < {params.bind(column.minimum)} THEN "
                f"{params.bind(f'{column.name}: must be >= {column.minimum}')} || "
                f"{_got(column, text, params)}"
            )
        if column.accepted_values:
            rules.append(
                f"WHEN {text} IS NOT NULL AND NOT list_contains("
                f"{params.bind(list(column.accepted_values))}, {text}) THEN "
                f"{params.bind(f'{column.name}: not an accepted value')} || "
                f"{_got(column, text, params)}"
            )
    time_column = spec.column(spec.event_time)
    event_time = typed(kind, time_column, params)
    start, end = window
    outside = f"{spec.event_time}: outside the partition window [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
    rules.append(
        f"WHEN {event_time} < {params.bind(start)} OR {event_time} >= {params.bind(end)} THEN "
        f"{params.bind(outside)} || {_got(time_column, f'CAST({event_time} AS VARCHAR)', params)}"
    )
    return rules


# The platform's own columns beside a record. Contract columns start with a letter (the registry
# enforces it), so these names never collide with a source's columns.
ORIGIN, POSITION, REASON = "_origin", "_position", "_quarantine_reason"


def checked_sql(
    kind: InputKind, spec: SourceSpec, window: tuple[datetime, datetime]
) -> tuple[str, dict[str, Any]]:
    """SELECT over `input` adding `_quarantine_reason` (NULL when the record is valid)."""
    params = _Params({})
    rules = " ".join(_rules(kind, spec, window, params))
    # Identifiers are quoted, types parsed by DuckDB, every value is a bound parameter.
    sql = f"SELECT *, CASE {rules} END AS {REASON} FROM input"  # noqa: S608
    return sql, params.values


def quarantine_raw_sql(kind: InputKind) -> str:
    """The record as received, as text: the JSON line itself, or the source row as JSON.

    Computed for quarantined records only, when the quarantine file is written.
    """
    if kind == "json":
        return "raw"
    return f"to_json(struct_pack(*COLUMNS(* EXCLUDE ({ORIGIN}, {POSITION}, {REASON}))))"


def loaded_sql(kind: InputKind, spec: SourceSpec) -> tuple[str, dict[str, Any]]:
    """SELECT over `checked`: valid records, typed, first occurrence of each primary key."""
    params = _Params({})
    columns = ", ".join(
        f"{typed(kind, c, params)} AS {quote_identifier(c.name)}" for c in spec.columns
    )
    key = typed(kind, spec.column(spec.primary_key), params)
    order = quote_identifier(spec.primary_key)
    sql = f"SELECT {columns} FROM checked WHERE {REASON} IS NULL QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ORIGIN}, {POSITION}) = 1 ORDER BY {order}"  # noqa: E501, S608
    return sql, params.values
