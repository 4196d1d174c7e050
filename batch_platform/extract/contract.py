"""The contract check every extracted record goes through, whatever its access method.

Records are first staged in a scratch DuckDB table (`input`), then one SQL statement decides,
for each record, the first contract rule it breaks (or none). Valid records are typed and
de-duplicated by primary key; the others go to the quarantine with their reason. Doing this in
DuckDB keeps it vectorised (no Python loop over rows) and lets it spill to disk for big inputs.

Nothing from the registry is formatted into SQL as a value: column names are validated
identifiers and are double-quoted, types were parsed by DuckDB's own type parser, and JSON
paths, messages, accepted values, minimums and the partition window are bound parameters.
A reason quotes the offending value, except for a PII column, whose value it never shows.

A value is loaded only as what it says, never approximated to fit (JSON records; see
`_rules`): a JSON object or array is not text for a VARCHAR column, a number that the declared
integer or decimal type could hold only rounded is refused, and a timestamp's offset is applied
(the instant is kept, in UTC), not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

import duckdb

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


# For JSON input, every contract field of a record is extracted once, in one parse of the line
# (`json_extract_string` over the list of all paths), into these list columns beside `raw`; the
# rules and the typed load index them. Extracting field by field would parse each line again
# for every column and rule (the events benchmark measured that at ~60% of the extract).
FIELDS, NESTED, SHAPE = "_fields", "_nested", "_shape"


_INTEGER_TYPES = frozenset(
    "tinyint smallint integer bigint hugeint utinyint usmallint uinteger ubigint uhugeint".split()
)


@cache
def exact_type(data_type: str) -> str | None:
    """The type with every integer and decimal in it made DOUBLE; None when it holds neither.

    What a JSON number is before it is typed: DuckDB's JSON reader holds numbers as doubles
    (or 64-bit integers). A value that casts to `data_type` and back to this type unchanged
    fitted exactly; one that comes back different was rounded to fit (1.9 -> INTEGER 2, 12.345
    -> DECIMAL(12,2) 12.35), and is refused. For up to 15 significant digits a double holds a
    decimal exactly, so the comparison is exact for every type the registry uses.
    """
    exact = _exact(data_type)
    # Built from DuckDB's own spelling of the declared type; parsed again to stay one.
    return None if exact is None else str(duckdb.sqltype(exact))


def _exact(data_type: str) -> str | None:
    parsed = duckdb.sqltype(data_type)
    kind = parsed.id
    if kind in _INTEGER_TYPES or kind == "decimal":
        return "DOUBLE"
    if kind == "list":
        inner = _exact(str(parsed.children[0][1]))
        return None if inner is None else f"{inner}[]"
    if kind == "array":
        (_, child), (_, size) = parsed.children
        inner = _exact(str(child))
        return None if inner is None else f"{inner}[{size}]"
    if kind == "map":
        (_, key), (_, value) = parsed.children
        key_exact, value_exact = _exact(str(key)), _exact(str(value))
        if key_exact is None and value_exact is None:
            return None
        return f"MAP({key_exact or key}, {value_exact or value})"
    if kind == "struct":
        fields = [(name, str(child), _exact(str(child))) for name, child in parsed.children]
        if all(exact is None for _, _, exact in fields):
            return None
        inner = ", ".join(f"{quote_identifier(n)} {e or t}" for n, t, e in fields)
        return f"STRUCT({inner})"
    return None


_SMALL_INTEGERS = frozenset("tinyint smallint integer utinyint usmallint uinteger".split())


@cache
def _doubles_hold_exactly(data_type: str) -> bool:
    """True when every number in the type is one a double holds exactly (integers up to 32
    bits, decimals up to 15 digits): a value can then be typed through its `exact_type`."""
    parsed = duckdb.sqltype(data_type)
    if parsed.id in _INTEGER_TYPES:
        return parsed.id in _SMALL_INTEGERS
    if parsed.id == "decimal":
        return dict(parsed.children)["precision"] <= 15
    if parsed.id in ("list", "array", "map", "struct"):
        return all(
            _doubles_hold_exactly(str(child))
            for name, child in parsed.children
            if not (parsed.id == "array" and name == "size")
        )
    return True


def _position(spec: SourceSpec, column: ColumnSpec) -> int:
    """1-based position of the column in the contract: its index in FIELDS."""
    return [c.name for c in spec.columns].index(column.name) + 1


def _nested_position(spec: SourceSpec, column: ColumnSpec) -> int:
    """1-based position of a nested column in NESTED, which holds the nested columns only."""
    return spec.nested_columns.index(column.name) + 1


def _text(kind: InputKind, spec: SourceSpec, column: ColumnSpec) -> str:
    """The column's value as text (JSON text for a nested one): `_t<position>` for JSON."""
    if kind == "json":
        return f"_t{_position(spec, column)}"
    return f"CAST({quote_identifier(column.name)} AS VARCHAR)"


def _value(kind: InputKind, spec: SourceSpec, column: ColumnSpec) -> str:
    """The column's value before typing: JSON for nested types, text for scalars.

    For JSON, a nested column whose numbers a double holds exactly is read once, as its
    `exact_type` (`_n<position>`), and typed from that: cheaper than reading the JSON twice,
    once for the typed value and once to see that nothing was rounded.
    """
    if kind != "json":
        return quote_identifier(column.name)
    if column.is_nested:
        return f"_n{_position(spec, column)}"
    return _text(kind, spec, column)


def _nested_read(spec: SourceSpec, column: ColumnSpec) -> str:
    """How `_n<position>` is read from the record's JSON."""
    json_value = f"{NESTED}[{_nested_position(spec, column)}]"
    exact = exact_type(column.data_type)
    if exact is not None and _doubles_hold_exactly(column.data_type):
        return f"TRY_CAST({json_value} AS {exact})"
    return json_value


def _scratch_columns(spec: SourceSpec) -> list[str]:
    """The columns `_parsed_input` adds that `checked` does not keep."""
    texts = [f"_t{_position(spec, c)}" for c in spec.columns]
    nested = [f"_n{_position(spec, spec.column(n))}" for n in spec.nested_columns]
    return [FIELDS, *([NESTED] if nested else []), *texts, *nested]


def _parsed_input(spec: SourceSpec, params: _Params) -> str:
    """`input` with SHAPE and FIELDS (and NESTED) added, each line parsed as few times as can be.

    SHAPE says why a line cannot be read as a record at all (too large, not JSON, not an
    object), or is NULL; FIELDS are the record's contract fields, extracted in one parse and
    left NULL for a line with a SHAPE, so such a line is never parsed for its fields. (CASE,
    not AND: DuckDB evaluates both sides of an AND, and a JSON function raises on a malformed
    line; a CASE branch sees only the rows that reach it.)
    """
    paths = params.bind(["$." + c.name for c in spec.columns])
    # One parse for both questions: try() turns json_type's error on a malformed line into NULL.
    shape = (
        f"CASE WHEN strlen(raw) > {params.bind(MAX_RECORD_BYTES)} THEN 'too_large' "
        "ELSE CASE coalesce(try(json_type(raw)), '') WHEN 'OBJECT' THEN NULL "
        "WHEN '' THEN 'malformed' ELSE 'not_object' END END"
    )
    nested = ""
    if spec.nested_columns:
        # As JSON, and only the nested paths: extracting every path a second time cost a third
        # of this statement on the order events (one nested column among eleven).
        nested_paths = params.bind(["$." + name for name in spec.nested_columns])
        nested = (
            f", CASE WHEN {SHAPE} IS NULL THEN json_extract(raw, {nested_paths}) END AS {NESTED}"
        )
    # Each field taken out of the lists once, as a column of its own (`_t<position>`, and
    # `_n<position>` for a nested one): every rule reads it, and indexing the list in each rule
    # took it out again each time.
    fields = [f"{FIELDS}[{_position(spec, c)}] AS _t{_position(spec, c)}" for c in spec.columns]
    fields += [
        f"{_nested_read(spec, spec.column(n))} AS _n{_position(spec, spec.column(n))}"
        for n in spec.nested_columns
    ]
    # Each field typed once too, as `_v<position>`, for the rules and the typed load to share.
    values = ", ".join(f"{_cast(spec, c)} AS {_typed_name(spec, c)}" for c in spec.columns)
    # Only the platform's constant names are formatted in; the paths and the limit are bound.
    return (
        f"(SELECT *, {values} FROM (SELECT *, {', '.join(fields)} FROM "  # noqa: S608
        f"(SELECT *, CASE WHEN {SHAPE} IS NULL THEN json_extract_string(raw, {paths}) END "
        f"AS {FIELDS}{nested} FROM (SELECT *, {shape} AS {SHAPE} FROM input))))"
    )


def _cast(spec: SourceSpec, column: ColumnSpec) -> str:
    """A JSON field typed as declared; NULL where it does not cast.

    A TIMESTAMP is read as an instant and kept in UTC: `2026-03-01T23:30:00-03:00` is
    2026-03-02 02:30 (a plain cast to TIMESTAMP would drop the offset and keep 23:30); a time
    without an offset is UTC already. The load's session time zone is UTC (`PartitionLoad`),
    which is what a time without an offset is read in.
    """
    value = _value("json", spec, column)
    if column.data_type == "TIMESTAMP":
        return f"timezone('UTC', TRY_CAST({value} AS TIMESTAMPTZ))"
    return f"TRY_CAST({value} AS {column.data_type})"


def _typed_name(spec: SourceSpec, column: ColumnSpec) -> str:
    return f"_v{_position(spec, column)}"


def typed(kind: InputKind, spec: SourceSpec, column: ColumnSpec) -> str:
    """The column's typed value (NULL where it does not cast); for JSON, computed once per
    record in `_parsed_input`."""
    if kind == "json":
        return _typed_name(spec, column)
    return f"TRY_CAST({_value(kind, spec, column)} AS {column.data_type})"


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
            f"WHEN {SHAPE} = 'too_large' THEN "
            f"{params.bind(too_large + ', got ')} || CAST(strlen(raw) AS VARCHAR)"
        )
        rules.append(f"WHEN {SHAPE} = 'malformed' THEN {params.bind('malformed JSON')}")
        rules.append(f"WHEN {SHAPE} = 'not_object' THEN {params.bind('not a JSON object')}")
    for column in spec.columns:
        text = _text(kind, spec, column)
        if column.required:
            rules.append(
                f"WHEN {text} IS NULL THEN {params.bind('missing required field ' + column.name)}"
            )
        value = typed(kind, spec, column)
        if kind == "json" and column.data_type == "VARCHAR":
            # The text of a JSON object or array casts to VARCHAR, but is not what the column
            # holds. Only a field whose text starts with `{` or `[` is parsed again to tell an
            # object from a string that looks like one.
            json_type = f"json_type(raw, {params.bind('$.' + column.name)})"
            rules.append(
                f"WHEN CASE WHEN ascii({text}) IN (91, 123) THEN {json_type} IN ('OBJECT', "
                f"'ARRAY') END THEN {params.bind(f'{column.name}: expected VARCHAR, got a JSON ')}"
                f" || lower({json_type})"
            )
        rules.append(
            f"WHEN {text} IS NOT NULL AND {value} IS NULL THEN "
            f"{params.bind(f'{column.name}: expected {column.data_type}')} || "
            f"{_got(column, text, params)}"
        )
        exact = exact_type(column.data_type) if kind == "json" else None
        if exact is not None:
            # Cast (the typed value) and read exactly: different means the cast rounded.
            read = _value(kind, spec, column)
            if not (column.is_nested and _doubles_hold_exactly(column.data_type)):
                read = f"TRY_CAST({read} AS {exact})"  # else `_n<position>` is read exactly
            rules.append(
                f"WHEN {read} IS DISTINCT FROM CAST({value} AS {exact}) THEN "
                f"{params.bind(f'{column.name}: would be rounded to fit {column.data_type}')} || "
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
    event_time = typed(kind, spec, time_column)
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
    columns, source = "*", "input"
    if kind == "json":
        # The fields were only needed to decide and type; `checked` keeps the typed values.
        dropped = ", ".join(_scratch_columns(spec))
        columns, source = f"* EXCLUDE ({dropped})", _parsed_input(spec, params)
    sql = f"SELECT {columns}, CASE {rules} END AS {REASON} FROM {source}"  # noqa: S608
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
        f"{typed(kind, spec, c)} AS {quote_identifier(c.name)}" for c in spec.columns
    )
    key = typed(kind, spec, spec.column(spec.primary_key))
    order = quote_identifier(spec.primary_key)
    sql = f"SELECT {columns} FROM checked WHERE {REASON} IS NULL QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ORIGIN}, {POSITION}) = 1 ORDER BY {order}"  # noqa: E501, S608
    return sql, params.values
