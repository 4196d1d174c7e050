"""Numeric metadata on every dbt model's materialisation, so the UI plots it over time.

dbt reports what it ran, not what a table now holds. The figures people watch (a day's rows,
a day's break rate, how many records were quarantined) come from the warehouse itself. They
cannot be read while dbt runs: dbt-duckdb holds the warehouse's single write lock for the whole
invocation, so dagster-dbt's own `fetch_row_counts()` (which queries alongside dbt) would fail
on the lock. Instead the step keeps dbt's events until dbt has exited, opens the warehouse
read-only once, and adds the figures to each model's output before handing the events on.
Meanwhile each finished model is reported in the run's log as it happens, so a long step
shows its progress.

A partition's figures describe that partition. A partitioned model's figures are counted per
day of its partition column (the column its `delete_partition_window` pre-hook replaces), and
each day's figures are attached to that day's materialisation with Dagster's
`add_asset_metadata(partition_key=...)`: a three-day backfill records three sets of figures,
a day with no rows records 0. An unpartitioned model's figures describe the whole table.

Queries are constants with the table and column as quoted identifiers and the partition window
bound as parameters; nothing from configuration or a partition key is formatted into SQL.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from batch_platform.analytics import quote_identifier

log = logging.getLogger(__name__)

ROW_COUNT = "dagster/row_count"


@dataclass(frozen=True)
class TableMetric:
    """Figures worth plotting beyond the row count: aggregates over a day, or the whole table.

    `aggregates` are SQL aggregate expressions over the model's own columns (constants here,
    never configuration). For a partitioned model they are computed per day of its partition
    column; for an unpartitioned one over the whole table.
    """

    names: tuple[str, ...]
    aggregates: tuple[str, ...]


# Per dbt model name: the figures worth plotting beyond the row count.
METRICS: dict[str, TableMetric] = {
    "reconciliation_daily_summary": TableMetric(
        names=("break_rate", "breaks", "orders_checked"),
        aggregates=("max(break_rate)", "sum(breaks)", "sum(orders_checked)"),
    ),
    "quarantine_daily_summary": TableMetric(
        names=("quarantined_records",), aggregates=("coalesce(sum(records), 0)",)
    ),
}

# The pre-hook every partitioned model declares: `delete_partition_window('<column>')`.
_PARTITION_HOOK = re.compile(r"delete_partition_window\(\s*['\"](\w+)['\"]\s*\)")


def partition_column(node: Mapping[str, Any]) -> str | None:
    """The column a partitioned model's days are kept in, from its pre-hook; else None."""
    config = node.get("config") or {}
    hooks = config.get("pre-hook") or config.get("pre_hook") or []
    for hook in hooks if isinstance(hooks, list) else [hooks]:
        sql = hook.get("sql", "") if isinstance(hook, Mapping) else str(hook)
        found = _PARTITION_HOOK.search(sql)
        if found:
            return found.group(1)
    return None


def quoted_table(node: Mapping[str, Any]) -> str:
    """`"schema"."alias"` of a dbt model, each part quoted with embedded quotes doubled."""
    return ".".join(
        quote_identifier(part) for part in (node["schema"], node.get("alias") or node["name"])
    )


def _names_and_aggregates(node: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    metric = METRICS.get(node["name"])
    extra_names, extra = (metric.names, metric.aggregates) if metric else ((), ())
    return (ROW_COUNT, *extra_names), ("count(*)", *extra)


def model_query(
    node: Mapping[str, Any], window: tuple[date, date] | None
) -> tuple[tuple[str, ...], str, list[Any]]:
    """The query whose figures go onto this model's output: (metadata names, SQL, params).

    With a window and a partition column, one row per day in the window: the day, then the
    figures. Otherwise one row of figures over the whole table.
    """
    names, aggregates = _names_and_aggregates(node)
    table, column = quoted_table(node), partition_column(node)
    figures = ", ".join(aggregates)
    if window is None or column is None:
        return names, f"select {figures} from {table}", []  # noqa: S608 - quoted identifiers
    day = f"cast({quote_identifier(column)} as date)"
    sql = (
        f"select {day}, {figures} from {table}"  # noqa: S608 - quoted identifiers, bound window
        f" where {quote_identifier(column)} >= ? and {quote_identifier(column)} < ? group by 1"
    )
    return names, sql, list(window)


def _number(value: Any) -> int | float:
    if value is None:
        return 0
    return int(value) if isinstance(value, int) else float(value)


@dataclass(frozen=True)
class ModelFigures:
    """A model's figures: over the whole table, or per day of the window (every day listed)."""

    whole: dict[str, int | float]
    per_day: dict[str, dict[str, int | float]]


def _days(window: tuple[date, date]) -> list[date]:
    return [window[0] + timedelta(days=n) for n in range((window[1] - window[0]).days)]


def read_metrics(
    warehouse: Path,
    nodes: Mapping[str, Mapping[str, Any]],
    window: tuple[date, date] | None,
) -> dict[str, ModelFigures]:
    """Figures per dbt unique id, from one read-only connection to the warehouse.

    A day of the window with no rows gets its figures as 0: the partition was materialised and
    is empty, which the UI must show as such rather than as a gap.
    """
    figures: dict[str, ModelFigures] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for unique_id, node in nodes.items():
            names, sql, params = model_query(node, window)
            rows = con.execute(sql, params).fetchall()
            if not params:
                row = rows[0] if rows else ()
                whole = {n: _number(v) for n, v in zip(names, row, strict=False)}
                figures[unique_id] = ModelFigures(whole, {})
                continue
            found = {day: values for day, *values in rows}
            per_day = {
                day.isoformat(): {
                    n: _number(v)
                    for n, v in zip(names, found.get(day) or [None] * len(names), strict=True)
                }
                for day in _days(window)
            }
            figures[unique_id] = ModelFigures({}, per_day)
    return figures


def day_window(window: tuple[datetime, datetime] | None) -> tuple[date, date] | None:
    return None if window is None else (window[0].date(), window[1].date())


def _current_context() -> dg.AssetExecutionContext | None:
    try:
        return dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return None  # outside a Dagster step (dbt's events replayed in a test)


def _asset_key(context: dg.AssetExecutionContext, event: Any) -> dg.AssetKey | None:
    if isinstance(event, dg.AssetMaterialization):
        return event.asset_key
    try:
        return context.asset_key_for_output(event.output_name)
    except (KeyError, dg.DagsterInvariantViolationError):
        return None


def with_table_metrics(
    events: Iterable[Any],
    manifest: Mapping[str, Any],
    warehouse: Path,
    window: tuple[datetime, datetime] | None,
    context: dg.AssetExecutionContext | None = None,
) -> Iterator[Any]:
    """dbt's events, in order, once dbt has exited, with table figures on each model's output.

    An unpartitioned model's figures go onto its output. A partitioned model's figures go onto
    each partition's materialisation through `context` (by default the running step's), so a
    range run records every day's own figures; without a step to attach them to, each output
    carries the window's totals.

    If dbt fails, the events it produced are handed on unchanged and the failure re-raised, so
    what did build is still recorded. A warehouse that cannot be read leaves the events as dbt
    made them (the figures are informative; the materialisation itself stands).
    """
    context = context or _current_context()
    kept: list[Any] = []
    started = time.monotonic()
    try:
        for event in events:
            kept.append(event)
            _report_progress(context, event, time.monotonic() - started)
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
        found = figures.get(uid.value) if uid is not None else None
        if found is None:
            yield event
            continue
        extra = found.whole
        key = _asset_key(context, event) if context is not None and found.per_day else None
        if key is not None and isinstance(event, dg.Output):
            for day, day_figures in found.per_day.items():
                context.add_asset_metadata(day_figures, asset_key=key, partition_key=day)
        elif found.per_day:
            extra = {name: _sum(found.per_day, name) for name in next(iter(found.per_day.values()))}
        yield event.with_metadata({**event.metadata, **extra}) if extra else event


def _report_progress(context: dg.AssetExecutionContext | None, event: Any, elapsed: float) -> None:
    """One line in the run's log as each model finishes, while dbt still runs.

    The materialisations themselves wait until dbt exits (their figures need the warehouse),
    so without this a long dbt step would show no progress in the UI.
    """
    if context is None or not isinstance(event, dg.Output | dg.AssetMaterialization):
        return
    unique_id = event.metadata.get("unique_id")
    if unique_id is not None:
        context.log.info(f"dbt built {unique_id.value} ({elapsed:.1f} s into the step)")


def _sum(per_day: Mapping[str, Mapping[str, int | float]], name: str) -> int | float:
    """The window's figure from its days' (a rate is the worst day's, counts add up)."""
    values = [figures[name] for figures in per_day.values()]
    return max(values) if name.endswith("_rate") else sum(values)
