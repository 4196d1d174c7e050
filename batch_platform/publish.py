"""The published snapshot analysts query: `<data>/analytics.duckdb`, replaced atomically.

Why a separate file and not the warehouse itself: DuckDB locks the warehouse while dbt writes
it, so an analyst holding it open would block the pipeline and the pipeline would break the
analyst's session; and the warehouse holds staging tables an analyst has no business reading.
The snapshot holds only the analyst-facing layers (middle_platform, scenario, channel,
consistency) as plain tables with the dbt descriptions as comments. It is built under a
temporary name next to the target and renamed over it, so a reader sees the old snapshot or
the new one, never half of one, and never waits for a lock: nobody but its reader ever opens
the published file.

It is written in DuckDB storage format v1.2.0, which every DuckDB from 1.2 on opens, so the
DuckDB CLI an analyst installs from PyPI (1.5) can read it whatever the pipeline's DuckDB is.
"""

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from batch_platform.analytics import quote_identifier, snapshot_path
from batch_platform.dbt_project import load_manifest
from batch_platform.extract.lake import remove_leftovers, temporary_name
from batch_platform.registry import load_registry
from batch_platform.transform.dbt_assets import WAREHOUSE_OP_TAGS, translator
from batch_platform.warehouse import Engine

# dbt folders (= warehouse schemas) analysts may read; staging and the raw lake stay inside.
ANALYST_LAYERS = ("middle_platform", "scenario", "channel", "consistency")

# A storage format every DuckDB from 1.2 on reads; the pipeline's own DuckDB writes a newer one.
STORAGE_VERSION = "v1.2.0"

PREVIEW_TABLE = ("channel", "channel_daily_kpis")
PREVIEW_ROWS = 10

# Column names that would carry a person's contact details or name in the clear. Staging masks
# them into `<name>_hash` columns (keyed HMAC), which are what analysts get instead.
_RAW_PII_NAME = re.compile(
    r"(?:^|_)(?:e_?mail|phone|telephone|mobile_number|full_name|first_name|last_name"
    r"|middle_name|given_name|family_name|surname|customer_name|person_name|contact_name"
    r"|recipient_name)(?:_|$)|^name$"
)
_MASKED_SUFFIX = "_hash"


class SnapshotError(RuntimeError):
    """The snapshot cannot be published; the previous one, if any, stays in place."""


class PiiGuardError(SnapshotError):
    """A column of the new snapshot is named like raw PII."""


@dataclass(frozen=True)
class SnapshotTable:
    """One analyst-facing dbt model: where it lives and what its documentation says."""

    schema: str
    name: str
    asset_key: dg.AssetKey
    description: str = ""
    column_descriptions: Mapping[str, str] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def relation(self, catalog: str) -> str:
        return ".".join(quote_identifier(part) for part in (catalog, self.schema, self.name))


@dataclass(frozen=True)
class SnapshotStats:
    """What a publish produced, for the materialisation's metadata."""

    path: Path
    row_counts: Mapping[str, int]
    file_bytes: int
    preview_columns: tuple[str, ...] = ()
    preview_rows: tuple[tuple[Any, ...], ...] = ()

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


def _clean(text: str | None) -> str:
    """dbt descriptions are often folded YAML blocks: one line, single spaces."""
    return " ".join((text or "").split())


def analyst_tables(manifest: Mapping[str, Any]) -> list[SnapshotTable]:
    """Every dbt model in an analyst-facing layer, with its asset key and descriptions."""
    tables = []
    for node in manifest["nodes"].values():
        fqn = node.get("fqn") or []
        if node["resource_type"] != "model" or len(fqn) < 3 or fqn[1] not in ANALYST_LAYERS:
            continue
        columns = {
            name: _clean(column.get("description"))
            for name, column in (node.get("columns") or {}).items()
            if _clean(column.get("description"))
        }
        tables.append(
            SnapshotTable(
                schema=node["schema"],
                name=node.get("alias") or node["name"],
                asset_key=translator.get_asset_key(node),
                description=_clean(node.get("description")),
                column_descriptions=columns,
            )
        )
    return sorted(tables, key=lambda table: (table.schema, table.name))


def declared_pii_columns(manifest: Mapping[str, Any]) -> frozenset[str]:
    """Column names the source registry marks as PII (the contract), besides the name patterns."""
    return frozenset(name for spec in load_registry(dict(manifest)) for name in spec.pii_columns)


def raw_pii_columns(
    columns: Iterable[tuple[str, str, str]], declared: Iterable[str] = ()
) -> list[str]:
    """`schema.table.column` of every column named like raw PII and not a masked `*_hash`."""
    declared_names = {name.lower() for name in declared}
    found = []
    for schema, table, column in columns:
        name = column.lower()
        if name.endswith(_MASKED_SUFFIX):
            continue
        if name in declared_names or _RAW_PII_NAME.search(name):
            found.append(f"{schema}.{table}.{column}")
    return found


def _sql_string(text: str) -> str:
    """A SQL string literal. COMMENT ON takes no bound parameters, so the text is quoted
    the standard way (quotes doubled; DuckDB gives backslashes no meaning in a literal)."""
    return "'" + text.replace("\x00", "").replace("'", "''") + "'"


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _copy_tables(
    connection: duckdb.DuckDBPyConnection, tables: Sequence[SnapshotTable]
) -> dict[str, int]:
    """Copy each model from `warehouse` into `snap` as a table, with its comments; row counts."""
    present = {
        (schema, name)
        for schema, name in connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'warehouse' "
            "UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'warehouse'"
        ).fetchall()
    }
    missing = [
        table.qualified_name for table in tables if (table.schema, table.name) not in present
    ]
    if missing:
        raise SnapshotError(
            "the warehouse lacks " + ", ".join(missing) + ": materialise these dbt models first"
        )
    counts = {}
    for schema in sorted({table.schema for table in tables}):
        connection.execute(f"CREATE SCHEMA snap.{quote_identifier(schema)}")
    for table in tables:
        target, source = table.relation("snap"), table.relation("warehouse")
        # Identifiers are double-quoted; descriptions are literals quoted by _sql_string.
        connection.execute(f"CREATE TABLE {target} AS SELECT * FROM {source}")  # noqa: S608 (quoted)
        if table.description:
            connection.execute(f"COMMENT ON TABLE {target} IS {_sql_string(table.description)}")
        existing = {
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = 'snap' AND schema_name = ? AND table_name = ?",
                [table.schema, table.name],
            ).fetchall()
        }
        for column, text in table.column_descriptions.items():
            if column in existing:
                connection.execute(
                    f"COMMENT ON COLUMN {target}.{quote_identifier(column)} IS {_sql_string(text)}"
                )
        (counts[table.qualified_name],) = connection.execute(
            f"SELECT count(*) FROM {target}"  # noqa: S608 (quoted identifier)
        ).fetchone()
    return counts


def _preview(
    connection: duckdb.DuckDBPyConnection, tables: Sequence[SnapshotTable]
) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]:
    """The latest rows of the channel KPIs, so the UI shows what analysts will see."""
    for table in tables:
        if (table.schema, table.name) == PREVIEW_TABLE:
            cursor = connection.execute(
                f"SELECT * FROM {table.relation('snap')} ORDER BY ALL DESC LIMIT ?",  # noqa: S608 (quoted)
                [PREVIEW_ROWS],
            )
            columns = tuple(column[0] for column in cursor.description)
            return columns, tuple(cursor.fetchall())
    return (), ()


def _build(
    warehouse: Path,
    temporary: Path,
    tables: Sequence[SnapshotTable],
    declared_pii: Iterable[str],
) -> tuple[dict[str, int], tuple[str, ...], tuple[tuple[Any, ...], ...]]:
    """Write the new snapshot to `temporary`; its row counts and preview."""
    with duckdb.connect() as connection:
        connection.execute("ATTACH ? AS warehouse (READ_ONLY)", [str(warehouse)])
        connection.execute(
            f"ATTACH ? AS snap (STORAGE_VERSION '{STORAGE_VERSION}')", [str(temporary)]
        )
        counts = _copy_tables(connection, tables)
        leaks = raw_pii_columns(
            connection.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = 'snap' ORDER BY ALL"
            ).fetchall(),
            declared_pii,
        )
        if leaks:
            raise PiiGuardError(
                "PII guard: the snapshot would expose raw personal data in "
                + ", ".join(leaks)
                + " (mask it in staging as a *_hash column); the previous snapshot stays"
            )
        preview_columns, preview_rows = _preview(connection, tables)
        connection.execute("CHECKPOINT snap")
        connection.execute("DETACH snap")
    return counts, preview_columns, preview_rows


def publish_snapshot(
    warehouse: Path,
    target: Path,
    tables: Sequence[SnapshotTable],
    declared_pii: Iterable[str] = (),
) -> SnapshotStats:
    """Copy `tables` from the warehouse into a new snapshot and swap it in atomically.

    The new file is built as `.<target>.<host>.<pid>.<random>.tmp` beside the target (same file
    system, so the rename is atomic), checkpointed, closed and fsynced, checked by the PII guard
    and only then renamed over the target. On any failure the temporary file is removed and the
    previous snapshot is untouched. A publish killed before it could clean up (SIGKILL, out of
    memory) leaves its temporary file and DuckDB's `.wal` beside it, a snapshot's size: the next
    publish removes them, named the lake's way so that it can tell them from the files of a
    publish still running (whose process is alive, or on another host), which it never touches.
    """
    if not warehouse.is_file():
        raise SnapshotError(f"no warehouse at {warehouse}: materialise the dbt models first")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    temporary = temporary_name(target)
    try:
        counts, preview_columns, preview_rows = _build(warehouse, temporary, tables, declared_pii)
        _fsync(temporary)
        file_bytes = temporary.stat().st_size
        os.replace(temporary, target)
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
            _fsync(target.parent)
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return SnapshotStats(target, counts, file_bytes, preview_columns, preview_rows)


def _markdown_cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-style Markdown table, which the Dagster UI renders in the metadata panel."""
    lines = [
        "| " + " | ".join(_markdown_cell(column) for column in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_markdown_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


_MANIFEST = load_manifest()
SNAPSHOT_TABLES = analyst_tables(_MANIFEST)


def build_analytics_snapshot(engine: Engine) -> dg.AssetsDefinition:
    """The snapshot asset, reading the DuckDB file `engine` leaves its models in."""

    @dg.asset(
        name="analytics_snapshot",
        group_name="analytics",
        owners=["team:data-platform"],
        kinds={"duckdb"},
        deps=[table.asset_key for table in SNAPSHOT_TABLES],
        pool=engine.table_pool,
        op_tags=WAREHOUSE_OP_TAGS,
        # Unpartitioned; declared so that a range run of the whole graph is accepted by the CLI.
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            "The read-only DuckDB file analysts query (`<data>/analytics.duckdb`, "
            "`batch-platform query`): every table of the middle_platform, scenario, channel and "
            "consistency layers, with the dbt descriptions as comments, and no staging data or raw "
            "PII. A separate file, swapped in atomically, because DuckDB locks the warehouse while "
            "dbt writes: analysts never wait on the pipeline and never block it, and always see a "
            "whole snapshot. Takes the warehouse pool because it reads the warehouse (on Spark: "
            "the catalog of views over Spark's Parquet tables, beside them)."
        ),
    )
    def analytics_snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Publish the analyst-facing layers of the warehouse as a new snapshot."""
        try:
            stats = publish_snapshot(
                engine.readable_warehouse(),
                snapshot_path(),
                SNAPSHOT_TABLES,
                declared_pii_columns(_MANIFEST),
            )
        except SnapshotError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error
        context.log.info(
            f"published {len(stats.row_counts)} tables, {stats.total_rows} rows to {stats.path}"
        )
        metadata: dict[str, Any] = {
            "path": dg.MetadataValue.path(str(stats.path)),
            "tables": dg.MetadataValue.int(len(stats.row_counts)),
            "total_rows": dg.MetadataValue.int(stats.total_rows),
            "dagster/row_count": dg.MetadataValue.int(stats.total_rows),
            "file_bytes": dg.MetadataValue.int(stats.file_bytes),
            "storage_version": STORAGE_VERSION,
            "rows_per_table": dg.MetadataValue.md(
                markdown_table(["table", "rows"], sorted(stats.row_counts.items()))
            ),
        }
        if stats.preview_columns:
            metadata["preview"] = dg.MetadataValue.md(
                markdown_table(stats.preview_columns, stats.preview_rows)
            )
        return dg.MaterializeResult(metadata=metadata)

    return analytics_snapshot
