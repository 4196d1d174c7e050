"""Read-only access to the published analytics snapshot: the `query` and `tables` commands.

Analysts query `<data>/analytics.duckdb`, the snapshot `analytics_snapshot` publishes, never the
warehouse: the warehouse is locked while dbt writes it, the snapshot is replaced atomically and
holds no staging data or raw PII. This module deliberately imports neither Dagster nor dbt, so
the commands start in a fraction of a second.

Least privilege, twice over: a statement is parsed by DuckDB and refused unless it is a read
(SELECT, or EXPLAIN of a SELECT) before anything runs, and the snapshot is then opened read-only
with file system access disabled, so even a statement that slipped through could neither change
the snapshot nor read or write other files.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batch_platform.paths import data_dir

SNAPSHOT_FILE = "analytics.duckdb"

# Exit codes: 1 the query failed in DuckDB, 2 the request itself was refused or impossible.
EXIT_SQL_ERROR = 1
EXIT_REFUSED = 2

# A pretty table is for reading; more rows than this belong in csv/json/parquet.
TABLE_ROWS_SHOWN = 500

FORMATS = ("table", "csv", "json", "parquet")

# EXPLAIN ANALYZE runs the statement it explains, so the explained statement is checked too.
# Leading comments, the ANALYZE keyword and an option list such as (FORMAT json) are skipped.
_EXPLAIN_PREFIX = re.compile(
    r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*explain\b(?:\s+analyze\b)?\s*(?:\([^)]*\))?",
    re.IGNORECASE | re.DOTALL,
)


class QueryRefused(ValueError):
    """The SQL is not a single read statement; nothing was executed."""


class SnapshotMissing(FileNotFoundError):
    """No snapshot has been published at the path yet."""


@dataclass(frozen=True)
class TableInfo:
    """One table of the snapshot as `tables` lists it."""

    schema: str
    name: str
    description: str
    rows: int


def snapshot_path() -> Path:
    """Where the analyst snapshot is published: `<data>/analytics.duckdb`.

    It lives here rather than in the publish module so the CLI need not import Dagster to find it.
    """
    return data_dir() / SNAPSHOT_FILE


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes, so any schema, table or column name is safe in SQL."""
    return '"' + name.replace('"', '""') + '"'


def _single_statement(sql: str) -> duckdb.Statement:
    with duckdb.connect() as parser:  # in memory: parsing needs no database
        statements = parser.extract_statements(sql)
    if not statements:
        raise QueryRefused("no SQL statement given")
    if len(statements) > 1:
        raise QueryRefused(f"one statement at a time, got {len(statements)}")
    return statements[0]


def check_read_only(sql: str) -> str:
    """The statement to run, if `sql` is exactly one read statement; else `QueryRefused`.

    Uses DuckDB's own parser, nothing is executed; a syntax error raises `duckdb.ParserException`.
    """
    statement = _single_statement(sql)
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN:
        explained = _EXPLAIN_PREFIX.sub("", statement.query, count=1)
        try:
            inner = _single_statement(explained)
        except (QueryRefused, duckdb.Error):
            inner = None
        if inner is None or inner.type != duckdb.StatementType.SELECT:
            raise QueryRefused("read-only: EXPLAIN is allowed for SELECT statements only")
    elif kind != duckdb.StatementType.SELECT:
        raise QueryRefused(
            f"read-only: {kind.name} statements are refused; the snapshot answers SELECT queries"
        )
    return statement.query


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the snapshot that cannot touch any other file.

    Opening read-only never waits on the pipeline: the publisher writes a temporary file and
    renames it over the snapshot, so the snapshot file itself is never held for writing.
    """
    if not path.is_file():
        raise SnapshotMissing(
            f"no analytics snapshot at {path}: materialise the `analytics_snapshot` asset "
            "(Dagster UI, group `analytics`) to publish one"
        )
    return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})


def run_query(sql: str, snapshot: Path) -> pa.Table:
    """The result of one read statement against the snapshot, checked before it runs."""
    statement = check_read_only(sql)
    with open_snapshot(snapshot) as connection:
        return connection.sql(statement).to_arrow_table()


def list_tables(snapshot: Path) -> list[TableInfo]:
    """Every table of the snapshot with its description (the table comment) and exact row count."""
    with open_snapshot(snapshot) as connection:
        tables = connection.execute(
            "SELECT schema_name, table_name, coalesce(comment, '') FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY schema_name, table_name"
        ).fetchall()
        infos = []
        for schema, name, comment in tables:
            relation = f"{quote_identifier(schema)}.{quote_identifier(name)}"
            count_sql = f"SELECT count(*) FROM {relation}"  # noqa: S608 (quoted identifiers)
            (rows,) = connection.execute(count_sql).fetchone()
            infos.append(TableInfo(schema, name, " ".join(comment.split()), rows))
    return infos


def _plain(value: Any) -> Any:
    """A JSON value for one cell: decimals as numbers (HUGEINT arrives as a scale-0 decimal, so it
    stays an integer), dates and times in ISO 8601, nested values element by element."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _csv_cell(value: Any) -> str:
    """One CSV field: NULL empty, decimals with their scale, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, str | Decimal):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False)
    plain = _plain(value)
    return str(plain).lower() if isinstance(plain, bool) else str(plain)


def _rows(result: pa.Table, limit: int | None = None) -> list[tuple[Any, ...]]:
    """Rows as tuples, by position: a result may repeat a column name, a dict would drop one."""
    part = result if limit is None else result.slice(0, limit)
    return list(zip(*(column.to_pylist() for column in part.columns), strict=True))


def write_csv(result: pa.Table, stream: TextIO) -> None:
    """RFC 4180 CSV with a header row."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in _rows(result):
        writer.writerow(_csv_cell(value) for value in row)


def write_json(result: pa.Table, stream: TextIO) -> None:
    """A JSON array of one object per row."""
    json.dump([_plain(row) for row in result.to_pylist()], stream, indent=2, ensure_ascii=False)
    stream.write("\n")


# Reading at 80 columns: text that does not fit is cut with an ellipsis (unless --wide), but a
# text column is never squeezed below TEXT_MIN characters to make room for the others.
TEXT_MIN = 8
# Rich's default box: one border before each column and after the last, one space each side.
_BORDER_PER_COLUMN = 3


def _is_number(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )


def _is_text(data_type: pa.DataType) -> bool:
    """Columns whose values may be long prose: cut to fit. Numbers and dates are never cut."""
    return not (_is_number(data_type) or pa.types.is_temporal(data_type))


def readable_number(value: float | Decimal) -> str:
    """A number rounded for reading: two decimals from 1 up, three significant digits below.

    Exact decimals with at most two places (money) are shown as they are; integers never
    reach here. csv, json and parquet always carry the exact value.
    """
    if isinstance(value, Decimal):
        if not value.is_finite() or value.as_tuple().exponent >= -2:
            return str(value)
    elif not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def display_cell(value: Any, wide: bool) -> str:
    """How one value reads in the terminal table; `wide` shows it exactly as str() does."""
    if value is None:
        return "NULL"
    if not wide and isinstance(value, float | Decimal) and not isinstance(value, bool):
        return readable_number(value)
    return str(value)


def column_widths(
    headers: list[str], columns: list[list[str]], text: list[bool], width: int | None
) -> list[int] | None:
    """Each column's width so the table fits in `width` characters, or None if it cannot.

    Numbers, dates and headers of those columns keep their full width; text columns give way,
    the widest first, down to TEXT_MIN. `width=None` (--wide) fits everything in full.
    """
    widths = [
        max([cell_len(header), *(cell_len(cell) for cell in cells)])
        for header, cells in zip(headers, columns, strict=True)
    ]
    if width is None:
        return widths
    budget = width - _BORDER_PER_COLUMN * len(widths) - 1
    while sum(widths) > budget:
        shrinkable = [i for i, is_text in enumerate(text) if is_text and widths[i] > TEXT_MIN]
        if not shrinkable:
            return None
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] = max(TEXT_MIN, widths[widest] - (sum(widths) - budget))
    return widths


def print_rows(
    headers: list[str],
    numeric: list[bool],
    text: list[bool],
    rows: list[list[str]],
    caption: str,
    console: Console,
    wide: bool,
) -> None:
    """A table that fits the terminal; if even cut text cannot fit, one block per row.

    With `wide` nothing is cut: the console is widened to the table's full width (pipe it to
    `less -S` to scroll sideways).
    """
    columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in headers]
    widths = column_widths(headers, columns, text, None if wide else console.width)
    if wide:
        full = sum(widths) + _BORDER_PER_COLUMN * len(widths) + 1
        console = Console(width=max(console.width, full, cell_len(caption)), file=console.file)
    if widths is None:
        _print_records(headers, rows, caption, console)
        return
    table = Table(header_style="bold", caption=caption)
    for header, is_number, size in zip(headers, numeric, widths, strict=True):
        table.add_column(
            header,
            justify="right" if is_number else "left",
            width=size,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        # Text, not str: rich would read a value like "[red]" as markup
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _print_records(headers: list[str], rows: list[list[str]], caption: str, console: Console):
    """One block per row, `column  value` per line: for results too wide for any table."""
    name_width = max(cell_len(header) for header in headers)
    value_width = max(TEXT_MIN, console.width - name_width - 2)
    for number, row in enumerate(rows, 1):
        console.rule(f"row {number}", align="left", style="dim")
        for header, cell in zip(headers, row, strict=True):
            line = Text(header.ljust(name_width), style="bold")
            value = Text(cell)
            value.truncate(value_width, overflow="ellipsis")
            console.print(line + Text("  ") + value, no_wrap=True, overflow="ellipsis")
    console.print(Text(caption, style="dim italic"))


def render_table(result: pa.Table, console: Console, wide: bool = False) -> None:
    """The result for the terminal, at most TABLE_ROWS_SHOWN rows (the caption says so).

    Numbers are rounded for reading and long text cut with an ellipsis so the table fits the
    terminal; `wide` shows every value in full.
    """
    numeric = [_is_number(field.type) for field in result.schema]
    text = [_is_text(field.type) for field in result.schema]
    rows = [[display_cell(value, wide) for value in row] for row in _rows(result, TABLE_ROWS_SHOWN)]
    shown = min(result.num_rows, TABLE_ROWS_SHOWN)
    caption = f"{result.num_rows} rows" + (
        f" (first {shown} shown; use --format csv/json/parquet for all)"
        if shown < result.num_rows
        else ""
    )
    print_rows(list(result.column_names), numeric, text, rows, caption, console, wide)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@click.command("query", context_settings={"ignore_unknown_options": True})
@click.argument("sql")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table prints for people; csv and json print or write for tools; parquet needs --output.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the result here."
)
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The snapshot to query (default: <data>/analytics.duckdb).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="table format: every value in full and unrounded, however wide the table gets.",
)
def query(
    sql: str, output_format: str, output: Path | None, snapshot: Path | None, wide: bool
) -> None:
    """Run one read-only SQL statement against the published analytics snapshot.

    Anything but a read (SELECT, EXPLAIN SELECT) is refused before it runs (exit 2). The table
    format rounds numbers and cuts long text to fit the terminal; csv, json and parquet are exact.
    """
    if output_format == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a file: give --output FILE")
    if output_format == "table" and output is not None:
        raise click.UsageError("--output needs --format csv, json or parquet")
    try:
        result = run_query(sql, snapshot or snapshot_path())
    except (QueryRefused, SnapshotMissing) as refused:
        _fail(str(refused), EXIT_REFUSED)
    except duckdb.Error as error:
        _fail(_one_line(error), EXIT_SQL_ERROR)
    if output_format == "table":
        render_table(result, Console(), wide)
    elif output_format == "parquet":
        pq.write_table(result, output)
    else:
        writer = write_csv if output_format == "csv" else write_json
        if output is None:
            writer(result, click.get_text_stream("stdout"))
        else:
            with output.open("w", encoding="utf-8", newline="") as stream:
                writer(result, stream)
    if output is not None:
        click.echo(f"{result.num_rows} rows written to {output}", err=True)


@click.command("tables")
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The snapshot to list (default: <data>/analytics.duckdb).",
)
@click.option("--wide", is_flag=True, help="Show every description in full.")
def tables(snapshot: Path | None, wide: bool) -> None:
    """List the snapshot's tables with their schema, description and row count."""
    try:
        infos = list_tables(snapshot or snapshot_path())
    except SnapshotMissing as missing:
        _fail(str(missing), EXIT_REFUSED)
    except duckdb.Error as error:
        _fail(_one_line(error), EXIT_SQL_ERROR)
    rows = [[info.schema, info.name, str(info.rows), info.description] for info in infos]
    print_rows(
        ["schema", "table", "rows", "description"],
        [False, False, True, False],
        [True, True, False, True],
        rows,
        f"{len(infos)} tables",
        Console(),
        wide,
    )
