"""Numeric metadata on every dbt model's materialisation, so the UI plots it over time.

dbt reports what it ran, not what a table now holds. The figures people watch (a table's rows,
a day's break rate, how many records were quarantined) come from the warehouse itself. They
cannot be read while dbt runs: dbt-duckdb holds the warehouse's single write lock for the whole
invocation, so dagster-dbt's own `fetch_row_counts()` (which queries alongside dbt) would fail
on the lock. Instead the step keeps dbt's events until dbt has exited, opens the warehouse
read-only once, and adds the figures to each model's output before handing the events on.

Queries are constants with the table as a quoted identifier and the partition window bound as
parameters; nothing from configuration or a partition key is formatted into SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

log = logging.getLogger(__name__)

ROW_COUNT = "dagster/row_count"


@dataclass(frozen=True)
class WindowMetric:
    """Figures of one model over the run's partition window, or over the whole table.

    `sql` selects one row of numbers from `{table}`; with a window it has two `?` parameters,
    the window's first day and the day after its last (half-open, as every model reads them).
    """

    names: tuple[str, ...]
    sql: str
    windowed: bool


# Per dbt model name: the figures worth plotting beyond the row count.
METRICS: dict[str, WindowMetric] = {
    "reconciliation_daily_summary": WindowMetric(
        names=("break_rate", "breaks", "orders_checked"),
        sql=(
            "select max(break_rate), sum(breaks), sum(orders_checked) from {table}"
            " where summary_date >= ? and summary_date < ?"
        ),
        windowed=True,
    ),
    "reconciliation_breaks": WindowMetric(
        names=("breaks_in_window",),
        sql="select count(*) from {table} where break_date >= ? and break_date < ?",
        windowed=True,
    ),
    "quarantine_daily_summary": WindowMetric(
        names=("quarantined_records",),
        sql="select sum(records) from {table}",
        windowed=False,
    ),
}


def quoted_table(node: Mapping[str, Any]) -> str:
    """`"schema"."alias"` of a dbt model, each part quoted with embedded quotes doubled."""
    parts = (node["schema"], node.get("alias") or node["name"])
    return ".".join('"' + str(part).replace('"', '""') + '"' for part in parts)


def model_queries(
    node: Mapping[str, Any], window: tuple[date, date] | None
) -> list[tuple[tuple[str, ...], str, list[Any]]]:
    """The queries whose figures go onto this model's output: (metadata names, SQL, params).

    A windowed metric is only asked for when the run has a window: an unpartitioned run has no
    day to speak of.
    """
    table = quoted_table(node)
    queries: list[tuple[tuple[str, ...], str, list[Any]]] = [
        ((ROW_COUNT,), f"select count(*) from {table}", [])  # noqa: S608 - quoted identifier
    ]
    metric = METRICS.get(node["name"])
    if metric is not None and (window is not None or not metric.windowed):
        params = list(window) if metric.windowed else []
        queries.append((metric.names, metric.sql.format(table=table), params))
    return queries


def _number(value: Any) -> int | float:
    if value is None:
        return 0
    return int(value) if isinstance(value, int) else float(value)


def read_metrics(
    warehouse: Path,
    nodes: Mapping[str, Mapping[str, Any]],
    window: tuple[date, date] | None,
) -> dict[str, dict[str, int | float]]:
    """Figures per dbt unique id, from one read-only connection to the warehouse."""
    figures: dict[str, dict[str, int | float]] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for unique_id, node in nodes.items():
            values: dict[str, int | float] = {}
            for names, sql, params in model_queries(node, window):
                row = con.execute(sql, params).fetchone() or ()
                values.update({n: _number(v) for n, v in zip(names, row, strict=False)})
            figures[unique_id] = values
    return figures


def day_window(window: tuple[datetime, datetime] | None) -> tuple[date, date] | None:
    return None if window is None else (window[0].date(), window[1].date())


def with_table_metrics(
    events: Iterable[Any],
    manifest: Mapping[str, Any],
    warehouse: Path,
    window: tuple[datetime, datetime] | None,
) -> Iterator[Any]:
    """dbt's events, in order, once dbt has exited, with table figures on each model's output.

    If dbt fails, the events it produced are handed on unchanged and the failure re-raised, so
    what did build is still recorded. A warehouse that cannot be read leaves the events as dbt
    made them (the figures are informative; the materialisation itself stands).
    """
    kept: list[Any] = []
    try:
        for event in events:
            kept.append(event)
    except BaseException:
        yield from kept
        raise

    outputs = {
        event.metadata["unique_id"].value: event
        for event in kept
        if isinstance(event, dg.Output | dg.AssetMaterialization) and "unique_id" in event.metadata
    }
    nodes = {uid: manifest["nodes"][uid] for uid in outputs if uid in manifest["nodes"]}
    try:
        figures = read_metrics(warehouse, nodes, day_window(window)) if nodes else {}
    except duckdb.Error as error:
        log.warning("table figures not added: warehouse %s unreadable: %s", warehouse, error)
        figures = {}
    for event in kept:
        uid = event.metadata.get("unique_id") if hasattr(event, "metadata") else None
        extra = figures.get(uid.value) if uid is not None else None
        yield event.with_metadata({**event.metadata, **extra}) if extra else event
