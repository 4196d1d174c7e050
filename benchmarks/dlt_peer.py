"""dlt as a peer: the same extracts done by a general-purpose loader, for the extract benchmarks.

dlt (https://dlthub.com) is what a team would otherwise reach for: declare a resource, let dlt
infer or take a schema, normalise and load it. The peers here do the platform's work as
closely as dlt does it idiomatically, so the ratio compares tools, not amounts of work:

- the same input (a day's landing files; the day's window of the SQLite table), one load per
  day into one table per day (the platform writes one partition per day), replaced on a
  re-run (`write_disposition="replace"`, as the platform replaces a partition);
- Parquet on local disk through dlt's `filesystem` destination;
- the platform's contract as dlt's schema contract: for events, a Pydantic model built from
  the same registry columns (types, required, accepted values, minimum), unknown fields
  dropped (`columns: discard_value`) and rows that break it dropped (`data_type:
  discard_row`); for the database, the columns reflected from SQLite and frozen.

What dlt does not do here, and the platform does: quarantine what it rejects (with the rule
and the origin), de-duplicate by primary key (the filesystem destination appends; `merge`
needs a table format), report schema drift, refuse a partition when a required column
vanished, and replace lake and quarantine atomically. What dlt does that the platform does
not: its normaliser, load packages with their own state and schema files, and the
`_dlt_load_id` / `_dlt_id` columns on every row.

dlt is an optional dependency (`pip install -e '.[bench]'`); `available()` says whether it is
installed, and the benchmarks skip this contender with a note when it is not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

# Set before dlt is imported and read its configuration: no usage reports from benchmarks.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

MISSING = "dlt is not installed (pip install -e '.[bench]'): the dlt contender was skipped"
# Items per list yielded to dlt: dlt extracts lists far faster than single dicts.
BATCH = 10_000


def available() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    try:
        from importlib.metadata import version as installed

        return installed("dlt")
    except Exception:
        return None


def _pipeline(name: str, work: Path, out: Path):
    """A pipeline whose working folder (state, schemas, load packages) stays under `work`."""
    import dlt

    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(work / "dlt-pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=out.resolve().as_uri()),
        dataset_name="lake",
    )


# ---------------------------------------------------------------------------------------------
# The platform's contract as a Pydantic model


_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$", re.IGNORECASE)


def _python_type(data_type: str) -> Any:
    """The Python type Pydantic validates a contract type against."""
    from pydantic import create_model

    upper = data_type.upper().strip()
    if upper.endswith("[]") and upper.startswith("STRUCT("):
        # struct(a t, b u)[] -> a list of a model with those fields, each required
        fields = {}
        inner = data_type.strip()[len("struct(") : -len(")[]")]
        for part in re.split(r",(?![^()]*\))", inner):  # commas outside DECIMAL(p,s)
            name, kind = part.strip().split(" ", 1)
            fields[name] = (_python_type(kind), ...)
        return list[create_model("Item", **fields)]
    if _DECIMAL.match(upper) or upper in ("DOUBLE", "FLOAT", "REAL"):
        return Decimal if _DECIMAL.match(upper) else float
    if upper in ("INTEGER", "BIGINT", "SMALLINT", "INT"):
        return int
    if upper.startswith("TIMESTAMP"):
        return datetime
    if upper == "DATE":
        return date
    if upper == "BOOLEAN":
        return bool
    return str


def contract_model(spec) -> type:
    """A Pydantic model of `spec`'s contract: each column's type, required (non-null),
    accepted values (Literal) and minimum (ge): the rules the platform's check applies."""
    from typing import Literal, Optional

    from pydantic import Field, create_model

    fields: dict[str, Any] = {}
    for column in spec.columns:
        kind = _python_type(column.data_type)
        if column.accepted_values:
            kind = Literal[tuple(column.accepted_values)]
        constraints = {"ge": column.minimum} if column.minimum is not None else {}
        if column.required:
            fields[column.name] = (kind, Field(..., **constraints))
        else:
            fields[column.name] = (Optional[kind], Field(None, **constraints))  # noqa: UP045
    return create_model(spec.name, **fields)


# ---------------------------------------------------------------------------------------------
# Events


def _lines(files: list[Path], skipped: list[int]) -> Iterator[list[dict]]:
    """The JSON objects of the files in lists of BATCH; a line that is not one is counted in
    `skipped[0]` and dropped (dlt has no quarantine; reading JSON Lines with dlt's own
    `read_jsonl` would stop at the first such line)."""
    from dlt.common import json

    batch: list[dict] = []
    for path in files:
        with open(path, "rb") as handle:
            for raw in handle:
                line = raw.strip()
                if not line:
                    continue
                try:
                    record = json.loadb(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    skipped[0] += 1
                    continue
                batch.append(record)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def load_events(spec, data_dir: Path, work: Path, days: list[str]) -> dict[str, int]:
    """The day's landing files of `spec` loaded by dlt, one load and one table per day.

    Returns the rows dlt wrote (counted in its Parquet files) and the lines it dropped as
    not JSON objects.
    """
    import dlt

    from batch_platform.extract.events import find_landing_files

    out = work / "dlt-lake"
    pipeline = _pipeline("events_peer", work, out)
    model = contract_model(spec)
    skipped = [0]
    for day in days:
        files = find_landing_files(spec, data_dir / "landing", date.fromisoformat(day)).files
        resource = dlt.resource(
            _lines(list(files), skipped),
            name=f"{spec.entity}__{day.replace('-', '_')}",
            columns=model,
            primary_key=spec.primary_key,
            write_disposition="replace",
            max_table_nesting=0,  # items stay one column, as in the platform's partition
            schema_contract={
                "tables": "evolve",  # a new table per day
                "columns": "discard_value",  # unknown fields dropped, the row kept
                "data_type": "discard_row",  # a row that breaks the contract is dropped
            },
        )
        pipeline.run(resource, loader_file_format="parquet")
    return {"rows": count_rows(out), "lines_not_objects": skipped[0]}


def count_rows(out: Path) -> int:
    """Rows in the Parquet files dlt wrote under `out` (its own tables excluded)."""
    import pyarrow.parquet as pq

    rows = 0
    for path in out.rglob("*.parquet"):
        if not any(part.startswith("_dlt") for part in path.relative_to(out).parts):
            rows += pq.ParquetFile(path).metadata.num_rows
    return rows


# ---------------------------------------------------------------------------------------------
# Database


def load_database(spec, database: Path, work: Path, day: date, chunk_size: int) -> dict:
    """The day's window of the SQLite table loaded by dlt's `sql_table`, under the contract.

    dlt's fast path, the pyarrow backend, types each column from the reflected table and
    stops the whole load at the first stray value (the benchmark's table has a few 'n/a'
    quantities in an INTEGER column, as SQLite allows): "Conversion to arrow failed for field
    `quantity`". So the peer uses the default SQLAlchemy backend, rows as dicts, validated
    against the contract model with `data_type: discard_row`, which drops the rows that break
    it and loads the rest, as the platform does (less the quarantine).
    """
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table

    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()

    def window(query, table):
        return query.where(table.c[spec.watermark] >= start).where(table.c[spec.watermark] < end)

    out = work / "dlt-lake"
    pipeline = _pipeline("database_peer", work, out)
    engine = sa.create_engine(f"sqlite:///{database}")
    resource = sql_table(
        credentials=engine,
        table=spec.options["table"],
        backend="sqlalchemy",
        chunk_size=chunk_size,
        included_columns=[c.name for c in spec.columns],
        query_adapter_callback=window,
        primary_key=spec.primary_key,
        write_disposition="replace",
        reflection_level="minimal",  # the contract model gives the types
    )
    resource.apply_hints(
        table_name=f"{spec.entity}__{day.isoformat().replace('-', '_')}",
        columns=contract_model(spec),
        schema_contract={
            "tables": "evolve",
            "columns": "discard_value",
            "data_type": "discard_row",
        },
    )
    try:
        pipeline.run(resource, loader_file_format="parquet")
    finally:
        engine.dispose()
    return {"rows": count_rows(out)}
