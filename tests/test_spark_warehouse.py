"""The same dbt models on Apache Spark (BATCH_PLATFORM_WAREHOUSE=spark), through Dagster.

A 3-day demo landscape is built on both engines at once (DuckDB in this process, Spark local
in `spark_build.py`'s), each published to its own `analytics.duckdb`. Every analyst table must
be equal row for row, without tolerance: the models' arithmetic is exact decimals or the same
IEEE doubles on both engines. Then two day-runs on Spark go side by side (no pool on Spark's
partitioned models) and replace exactly their days, one of them through a real Spark Connect
server (the cluster path, BATCH_PLATFORM_SPARK_REMOTE); and a Spark that cannot start (no Java,
a wrong master URL, an unreachable Connect server) fails the dbt step with one line and
publishes nothing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_ui import Process, free_port, wait_until
from support import (
    LANDSCAPE_SCALE,
    LANDSCAPE_SEED,
    LANDSCAPE_START,
    build_pipeline,
    landscape_days,
)

from batch_platform.analytics import SNAPSHOT_FILE
from batch_platform.paths import DATA_DIR_ENV, lake_dir, spark_dir
from batch_platform.pii import mask
from batch_platform.spark_warehouse import (
    DRIVER_CONFIG,
    LOCAL_CONFIG,
    REMOTE_ENV,
    TABLE_FILE,
    catalog_path,
    java_problem,
    register_functions,
    start_session,
)
from batch_platform.warehouse import WAREHOUSE_ENV

pytestmark = pytest.mark.slow

DAYS = landscape_days()[:3]
SCRIPT = Path(__file__).with_name("spark_build.py")


def start(data: Path, action: str, *days: str, **env: str) -> subprocess.Popen:
    """`spark_build.py` on Spark over `data`, in the background."""
    environment = {**os.environ, DATA_DIR_ENV: str(data), WAREHOUSE_ENV: "spark", **env}
    return subprocess.Popen(  # noqa: S603 - a fixed argument list
        [sys.executable, str(SCRIPT), str(data), action, *days],
        cwd=Path(__file__).parent,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def tables(database: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Every table and view: (its columns in order, its rows as text, sorted)."""
    with duckdb.connect(str(database), read_only=True) as con:
        names = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        found = {}
        for schema, table in names:
            relation = f'"{schema}"."{table}"'
            cursor = con.execute(f"SELECT * FROM {relation}")  # noqa: S608 - catalog names
            columns = [column[0] for column in cursor.description]
            found[f"{schema}.{table}"] = (columns, sorted(map(repr, cursor.fetchall())))
        return found


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    """(DuckDB's data folder, Spark's), the same 3 days built and published on each."""
    if problem := java_problem():  # the machine's image has Java 17; a laptop may not
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    from batch_platform.definitions import analytics_snapshot, engine
    from batch_platform.simulator import simulate

    assert engine.name == "duckdb", f"{WAREHOUSE_ENV} must be unset for the suite"
    base = tmp_path_factory.mktemp("engines")
    simulate(
        base / "landscape",
        start=LANDSCAPE_START,
        days=3,
        seed=LANDSCAPE_SEED,
        scale=LANDSCAPE_SCALE,
    )
    duck, spark = base / "duckdb", base / "spark"
    shutil.copytree(base / "landscape", duck)
    shutil.copytree(base / "landscape", spark)
    on_spark = start(spark, "build", *DAYS)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(DATA_DIR_ENV, str(duck))
            build_pipeline(duck, DAYS)
            assert dg.materialize([analytics_snapshot]).success
    finally:
        report = finish(on_spark)
    assert report["engine"] == "spark" and report["success"], report["failures"]
    return duck, spark


@pytest.fixture(scope="module")
def spark_connect(builds, tmp_path_factory) -> Iterator[tuple[str, Process]]:
    """A Spark Connect server on 127.0.0.1 (Spark local inside it), as a cluster's would be
    started (its `sbin/start-connect-server.sh` runs this class): its URL and its process."""
    import pyspark

    base = tmp_path_factory.mktemp("spark-connect")
    port = free_port()
    settings = {
        # The driver settings a client cannot change (the in-memory catalog), as docs/DEPLOY.md
        # says to start a server, and the small-machine sizing of a local Spark.
        **DRIVER_CONFIG,
        **LOCAL_CONFIG,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        # The server's Python workers run the platform's functions (pii_mask) on this venv.
        "spark.pyspark.python": sys.executable,
    }
    home = Path(pyspark.__file__).parent
    command = [str(home / "bin" / "spark-submit"), "--master", "local[2]"]
    command += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for name, value in settings.items():
        command += ["--conf", f"{name}={value}"]
    log = base / "server.log"
    with log.open("w") as out:
        popen = subprocess.Popen(  # noqa: S603 - a fixed argument list
            command,
            cwd=base,
            env={**os.environ, "SPARK_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Process("Spark Connect server", popen, log)
    try:
        wait_until(
            lambda: "Spark Connect server started" in log.read_text(errors="replace"),
            180,
            "the Spark Connect server",
            (server,),
        )
        yield f"sc://127.0.0.1:{port}", server
    finally:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(timeout=60)


def test_every_analyst_table_is_equal_row_for_row_on_both_engines(builds):
    duck, spark = builds
    on_duckdb, on_spark = tables(duck / SNAPSHOT_FILE), tables(spark / SNAPSHOT_FILE)
    assert {"middle_platform.fct_orders", "channel.channel_daily_kpis"} <= on_duckdb.keys()
    assert on_spark.keys() == on_duckdb.keys()
    assert sum(len(rows) for _, rows in on_duckdb.values()) > 1000
    for name, (columns, rows) in on_duckdb.items():
        assert on_spark[name][0] == columns, name
        assert on_spark[name][1] == rows, name
    # Spark's own tables, staging included, as its DuckDB catalog shows them.
    staging = tables(catalog_path(spark))
    assert len(staging["staging.stg_orders__order_events"][1]) > 100


def test_pii_keyed_hashes_are_equal_on_both_engines(builds):
    duck, spark = builds
    key = os.environ["BATCH_PLATFORM_PII_SALT"].encode()
    customers = str(lake_dir(spark) / "raw" / "customers" / "customers" / "*" / "*.parquet")
    with duckdb.connect() as con:
        latest = con.execute(
            "SELECT customer_id, email, phone FROM read_parquet(?, hive_partitioning = true) "
            "QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC) = 1",
            [customers],
        ).fetchall()
    expected = sorted((cid, mask(email, key), mask(phone, key)) for cid, email, phone in latest)
    assert len(expected) > 50
    for data in (duck, spark):
        with duckdb.connect(str(data / SNAPSHOT_FILE), read_only=True) as con:
            hashed = con.execute(
                "SELECT customer_id, email_hash, phone_hash FROM middle_platform.dim_customers "
                "ORDER BY customer_id"
            ).fetchall()
        assert hashed == expected, data.name
    # The key is in no file Spark's runs left: not in SQL, compiled models or logs.
    secret = key
    for path in spark.rglob("*"):
        if path.is_file() and path.suffix not in {".parquet", ".crc"}:
            assert secret not in path.read_bytes(), path


def test_two_day_runs_on_spark_go_side_by_side_and_replace_exactly_their_days(
    builds, spark_connect
):
    """Days 2 and 3 again, at once, day 3 through Spark Connect. Day 3's clickstream has
    meanwhile vanished from the lake, so its sessions must go (a day emptied, not kept) and
    every table must equal DuckDB's after the same re-run of day 3 there; everything else is
    exactly as before."""
    from batch_platform.definitions import dbt_partitioned_models, defs, extracts, transforms

    duck, spark = builds
    before = tables(catalog_path(spark))
    sessions = "staging.stg_clickstream__sessions"
    last_day = repr(date.fromisoformat(DAYS[2]))  # as a date shows in a row's text
    assert any(last_day in row for row in before[sessions][1])
    for data in (duck, spark):
        shutil.rmtree(lake_dir(data) / "raw" / "clickstream" / "sessions" / f"dt={DAYS[2]}")

    remote, server = spark_connect
    sessions_before = server.log.read_text(errors="replace").count("SessionHolder")
    runs = [start(spark, "day", DAYS[1]), start(spark, "day", DAYS[2], **{REMOTE_ENV: remote})]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_DIR_ENV, str(duck))
        on_duckdb = dg.materialize(
            [*extracts, *transforms],
            resources={"dbt": defs.resources["dbt"]},
            selection=dg.AssetSelection.assets(dbt_partitioned_models),
            partition_key=DAYS[2],
        )
    reports = [finish(run) for run in runs]
    assert on_duckdb.success
    assert all(report["success"] for report in reports), [
        failure[-2000:] for report in reports for failure in report["failures"]
    ]
    # The day-3 run's dbt worked in the server's sessions, not in a Spark of its own.
    assert server.log.read_text(errors="replace").count("SessionHolder") > sessions_before
    first, second = (report["dbt_step"] for report in reports)
    assert first[0] < second[1] and second[0] < first[1], "the two dbt steps did not overlap"
    assert all(report["pools"]["dbt_partitioned_models"] is None for report in reports)

    after = tables(catalog_path(spark))
    assert after == tables(duck / "warehouse.duckdb")
    assert not any(last_day in row for row in after[sessions][1])
    assert len(after[sessions][1]) > 0
    moved = {sessions, "channel.channel_daily_kpis"}  # the sessions and what counts them
    assert {name: after[name] for name in after if name not in moved} == {
        name: before[name] for name in before if name not in moved
    }


def test_pii_mask_through_spark_connect_is_the_platform_hash(spark_connect):
    """The function ships to the server's Python workers by value and keys with the key the
    client read from its environment: the same hash as DuckDB's `pii_mask`."""
    remote, _ = spark_connect
    key = os.environ["BATCH_PLATFORM_PII_SALT"].encode()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(REMOTE_ENV, remote)
        spark = start_session()
    register_functions(spark, key)
    values = ["ana@example.com", "+44 20 7946 0000", None]
    rows = spark.sql(
        "select v, pii_mask(v) as h from values (:a), (:b), (cast(null as string)) as t(v)",
        args={"a": values[0], "b": values[1]},
    ).collect()
    spark.stop()
    assert {row.v: row.h for row in rows} == {value: mask(value, key) for value in values}


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"JAVA_HOME": "/nonexistent/java"}, "JAVA_HOME=/nonexistent/java has no bin/java"),
        ({"BATCH_PLATFORM_SPARK_MASTER": "no-such-master"}, "BATCH_PLATFORM_SPARK_MASTER"),
        # A closed port: pyspark's client alone would retry for over ten minutes.
        (
            {REMOTE_ENV: "sc://127.0.0.1:9/;token=not-logged"},
            f"{REMOTE_ENV}=sc://127.0.0.1:9/;token=***: cannot reach 127.0.0.1:9",
        ),
    ],
)
def test_a_spark_that_cannot_start_fails_the_dbt_step_in_one_line_and_publishes_nothing(
    builds, tmp_path, setting, named
):
    duck, _ = builds
    data = tmp_path / "data"
    shutil.copytree(duck, data, ignore=shutil.ignore_patterns("*.duckdb", "dbt"))
    report = finish(start(data, "publish-day", DAYS[0], **setting))
    assert not report["success"]
    assert len(report["failures"]) == 1 and named in report["failures"][0], report["failures"]
    assert not (data / SNAPSHOT_FILE).exists()
    assert not any(spark_dir(data).rglob(TABLE_FILE))
