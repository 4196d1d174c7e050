"""`batch-platform query` and `tables`, run as real subprocesses against a real snapshot.

The snapshot is published once for this module from the shared `pipeline` fixture's warehouse
(conftest.py), into a folder of its own; every command runs the installed console script.
"""

import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from batch_platform.dbt_project import load_manifest
from batch_platform.paths import DATA_DIR_ENV, PROJECT_ROOT
from batch_platform.publish import analyst_tables, publish_snapshot

CLI = Path(sys.executable).parent / "batch-platform"
QUERIES = PROJECT_ROOT / "analytics" / "queries"
EXAMPLES = [
    "gmv_by_channel",
    "conversion_funnel",
    "top_products_stock_out_risk",
    "promotion_roi",
    "reconciliation_breaks",
]
KPIS_SQL = (
    "SELECT activity_date, channel, sessions, gmv, conversion_rate "
    "FROM channel.channel_daily_kpis ORDER BY activity_date, channel"
)


@pytest.fixture(scope="module")
def snapshot_data(pipeline, tmp_path_factory) -> Path:
    """A data folder whose analytics.duckdb was published from the pipeline's warehouse."""
    folder = tmp_path_factory.mktemp("query_cli") / "data"
    folder.mkdir()
    publish_snapshot(
        pipeline / "warehouse.duckdb",
        folder / "analytics.duckdb",
        analyst_tables(load_manifest()),
    )
    return folder


def run(
    data: Path, *args: str, cwd: Path | None = None, columns: int = 300
) -> subprocess.CompletedProcess:
    """The CLI with `data` as its data folder and a terminal `columns` wide (wide by default)."""
    env = {
        "PATH": str(CLI.parent),
        "HOME": str(data),
        DATA_DIR_ENV: str(data),
        "COLUMNS": str(columns),
    }
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def direct(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "analytics.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def cells(output: str) -> list[list[str]]:
    """The cells of each line of a rich table (header and body rows), stripped."""
    return [
        [cell.strip() for cell in line.split(line[0])[1:-1]]
        for line in output.splitlines()
        if line[:1] in ("│", "┃")
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_output_is_a_table_of_the_result(snapshot_data):
    sql = (
        "SELECT channel, sum(orders) AS orders FROM channel.channel_daily_kpis "
        "GROUP BY channel ORDER BY channel"
    )
    done = run(snapshot_data, "query", sql)
    assert done.returncode == 0, done.stderr
    rows = cells(done.stdout)
    assert ["channel", "orders"] in rows
    expected = direct(snapshot_data, sql)
    assert len(expected) == 3
    for channel, orders in expected:
        assert [channel, str(orders)] in rows
    assert f"{len(expected)} rows" in done.stdout


def test_csv_json_and_parquet_carry_the_exact_values(snapshot_data, tmp_path):
    expected = direct(snapshot_data, KPIS_SQL)
    assert expected

    done = run(snapshot_data, "query", KPIS_SQL, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["activity_date", "channel", "sessions", "gmv", "conversion_rate"]
    assert rows[1:] == [
        [d.isoformat(), c, str(s), str(g), "" if r is None else str(r)]
        for d, c, s, g, r in expected
    ]

    to_file = tmp_path / "kpis.csv"
    done = run(snapshot_data, "query", KPIS_SQL, "--format", "csv", "--output", str(to_file))
    assert done.returncode == 0, done.stderr
    assert list(csv.reader(io.StringIO(to_file.read_text()))) == rows

    done = run(snapshot_data, "query", KPIS_SQL, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "activity_date": d.isoformat(),
            "channel": c,
            "sessions": s,
            "gmv": float(g),
            "conversion_rate": r,
        }
        for d, c, s, g, r in expected
    ]

    parquet = tmp_path / "kpis.parquet"
    done = run(snapshot_data, "query", KPIS_SQL, "--format", "parquet", "--output", str(parquet))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(parquet)
    assert table.column_names == ["activity_date", "channel", "sessions", "gmv", "conversion_rate"]
    assert [tuple(row.values()) for row in table.to_pylist()] == expected
    assert isinstance(table.to_pylist()[0]["gmv"], Decimal)
    assert isinstance(table.to_pylist()[0]["activity_date"], date)


def test_parquet_needs_an_output_file(snapshot_data):
    done = run(snapshot_data, "query", "SELECT 1", "--format", "parquet")
    assert done.returncode == 2
    assert "--output" in done.stderr


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO channel.channel_daily_kpis SELECT * FROM channel.channel_daily_kpis",
        "CREATE TABLE main.scratch AS SELECT 1 AS x",
        "DROP TABLE channel.channel_daily_kpis",
        "COPY channel.channel_daily_kpis TO '{out}/copied.csv'",
        "ATTACH '{out}/other.duckdb' AS other",
        "SELECT 1; DROP TABLE channel.channel_daily_kpis",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/explained.csv'",
        "UPDATE channel.channel_daily_kpis SET gmv = 0",
    ],
    ids=[
        "insert",
        "create",
        "drop",
        "copy-to",
        "attach",
        "two-statements",
        "explain-copy",
        "update",
    ],
)
def test_anything_but_a_read_is_refused_before_it_runs(snapshot_data, tmp_path, sql):
    before = digest(snapshot_data / "analytics.duckdb")
    done = run(snapshot_data, "query", sql.format(out=tmp_path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ")
    assert list(tmp_path.iterdir()) == []
    assert digest(snapshot_data / "analytics.duckdb") == before


def test_sql_errors_are_one_line_with_exit_code_1(snapshot_data):
    done = run(snapshot_data, "query", "SELECT no_such_column FROM channel.channel_daily_kpis")
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no_such_column" in done.stderr


def test_a_read_cannot_reach_other_files(snapshot_data, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nnot-for-analysts\n")
    done = run(snapshot_data, "query", "SELECT * FROM read_csv('secret.csv')", cwd=tmp_path)
    assert done.returncode == 1
    assert "not-for-analysts" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_missing_snapshot_says_what_to_materialise(tmp_path):
    for args in (["query", "SELECT 1"], ["tables"]):
        done = run(tmp_path, *args)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
        assert "analytics_snapshot" in done.stderr
        assert str(tmp_path / "analytics.duckdb") in done.stderr


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_question_runs_and_answers(snapshot_data, name):
    text = (QUERIES / f"{name}.sql").read_text()
    assert text.startswith("-- Question: ")
    done = run(
        snapshot_data,
        "query",
        text,
        "--format",
        "json",
        "--snapshot",
        str(snapshot_data / "analytics.duckdb"),
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and len(rows) == len(direct(snapshot_data, text))


def test_tables_lists_every_table_with_description_and_row_count(snapshot_data):
    done = run(snapshot_data, "tables")
    assert done.returncode == 0, done.stderr
    listed = {(row[0], row[1]): row[2:] for row in cells(done.stdout) if row[0]}
    tables = analyst_tables(load_manifest())
    assert set(listed) == {("schema", "table")} | {(t.schema, t.name) for t in tables}
    for table in tables:
        count = f'SELECT count(*) FROM "{table.schema}"."{table.name}"'  # noqa: S608 (catalog)
        (rows,) = direct(snapshot_data, count)[0]
        shown_rows, description = listed[(table.schema, table.name)]
        assert shown_rows == str(rows)
        assert table.description.startswith(description.removesuffix("…"))
        assert len(description) > 20
    assert f"{len(tables)} tables" in done.stdout


def test_the_analyst_guide_shows_each_example_as_it_is():
    guide = (PROJECT_ROOT / "docs" / "ANALYSTS.md").read_text()
    for name in EXAMPLES:
        assert (QUERIES / f"{name}.sql").read_text().strip() in guide


def body_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table (the header row left out)."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_tables_fit_80_columns_one_line_per_table_and_wide_shows_everything(snapshot_data):
    tables = {(t.schema, t.name): t.description for t in analyst_tables(load_manifest())}

    done = run(snapshot_data, "tables", columns=80)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    rows = body_rows(done.stdout)
    assert len(rows) == len(tables)  # one line per table: nothing wraps
    cut = 0
    for schema, name, _, description in rows:
        full = tables[(schema, name)]
        if description.endswith("…"):
            cut += 1
            assert full.startswith(description.removesuffix("…")) and description != full
        else:
            assert description == full
    assert cut > 0  # the descriptions are longer than 80 columns leave them

    done = run(snapshot_data, "tables", "--wide", columns=80)
    assert done.returncode == 0, done.stderr
    assert {(s, n): d for s, n, _, d in body_rows(done.stdout)} == tables


def test_numbers_are_rounded_for_reading_and_exact_when_wide(snapshot_data):
    sql = (
        "SELECT channel, avg(conversion_rate) AS conversion_rate, "
        "avg(sessions) AS sessions_per_day, sum(gmv) AS gmv "
        "FROM channel.channel_daily_kpis GROUP BY channel ORDER BY channel"
    )
    expected = direct(snapshot_data, sql)
    assert len(expected) == 3

    done = run(snapshot_data, "query", sql, columns=80)
    assert done.returncode == 0, done.stderr
    assert body_rows(done.stdout) == [
        [channel, f"{rate:.3g}", f"{sessions:.2f}", str(gmv)]
        for channel, rate, sessions, gmv in expected
    ]
    assert all(0 < rate < 1 for _, rate, _, _ in expected)  # so three significant digits

    done = run(snapshot_data, "query", "--wide", sql, columns=80)
    assert done.returncode == 0, done.stderr
    assert body_rows(done.stdout) == [
        [channel, str(rate), str(sessions), str(gmv)] for channel, rate, sessions, gmv in expected
    ]


def test_long_text_is_cut_with_an_ellipsis_at_80_columns(snapshot_data):
    sql = "SELECT table_name, comment FROM duckdb_tables() ORDER BY table_name"
    expected = direct(snapshot_data, sql)

    done = run(snapshot_data, "query", sql, columns=80)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    rows = body_rows(done.stdout)
    assert [name for name, _ in rows] == [name for name, _ in expected]
    assert any(shown.endswith("…") for _, shown in rows)
    for (_, shown), (_, comment) in zip(rows, expected, strict=True):
        assert comment.startswith(shown.removesuffix("…"))

    done = run(snapshot_data, "query", "--wide", sql, columns=80)
    assert done.returncode == 0, done.stderr
    assert [tuple(row) for row in body_rows(done.stdout)] == expected


def test_a_result_too_wide_for_any_table_prints_one_block_per_row(snapshot_data):
    text = (QUERIES / "conversion_funnel.sql").read_text()
    (first, *_) = direct(snapshot_data, text)
    done = run(snapshot_data, "query", text, columns=80)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    block = lines[1 : 1 + len(first)]  # after the "row 1" rule
    assert lines[0].startswith("row 1")
    assert [line.split()[0] for line in block][:2] == ["channel", "sessions"]
    assert block[0].split()[1] == first[0]
    assert block[2].split()[1] == str(first[2])  # orders, an integer, exactly


def test_no_placeholder_links_anywhere():
    """A link in the docs or in asset metadata leads somewhere real, or is not there."""
    files = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    ).stdout.split()
    placeholders = ("github.com/example", "example-shop", "example.org/", "example.com/")
    found = [
        (name, placeholder)
        for name in files
        if (PROJECT_ROOT / name).is_file()
        for placeholder in placeholders
        if placeholder in (PROJECT_ROOT / name).read_text(errors="replace")
        and name != "tests/test_query_cli.py"
    ]
    assert found == []

    import dagster as dg

    from batch_platform.definitions import defs

    urls = [
        value.url
        for spec in defs.resolve_all_asset_specs()
        for value in spec.metadata.values()
        if isinstance(value, dg.UrlMetadataValue)
    ]
    assert not [url for url in urls if "example" in url]
