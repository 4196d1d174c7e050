"""A backfill of a range is ONE run with ONE dbt invocation, and equals day-by-day runs.

The range run is launched as a user would from the command line, for the whole graph:
`dagster asset materialize -m batch_platform.definitions --select '*' --partition-range A...B`.
"""

import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from support import demo_apis, warehouse

from batch_platform.definitions import defs
from batch_platform.paths import PROJECT_ROOT
from batch_platform.simulator import simulate

pytestmark = pytest.mark.slow

DAYS = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(2)]
# Every partitioned fact and mart (none of them reads a current-state table, so each day's
# partition is the same however and whenever it was built).
TABLES = [
    "middle_platform.fct_orders",
    "middle_platform.fct_order_items",
    "middle_platform.fct_payments",
    "middle_platform.fct_inventory_daily",
    "scenario.hot_selling_products_daily",
    "scenario.promotion_performance_daily",
    "channel.channel_daily_kpis",
    "consistency.reconciliation_breaks",
    "consistency.reconciliation_daily_summary",
]
NOT_PUBLISHED = dg.AssetSelection.all() - dg.AssetSelection.keys("analytics_snapshot")
EXTRACTS = dg.AssetSelection.groups("infrastructure") & dg.AssetSelection.key_prefixes("raw")
STAGING = dg.AssetSelection.key_prefixes("staging")
STAGING_ORDERS = dg.AssetKey(["staging", "stg_orders__order_events"])
PARTITIONED_MARTS = dg.AssetSelection.groups(
    "middle_platform", "scenario", "channel", "consistency"
) & dg.AssetSelection.assets(*[a for a in defs.assets if a.partitions_def is not None])


def materialize(data, instance, selection, **kwargs) -> None:
    with demo_apis(data):
        result = dg.materialize(
            list(defs.assets),
            selection=selection,
            resources={"dbt": defs.resources["dbt"]},
            instance=instance,
            **kwargs,
        )
    assert result.success


def snapshot(data):
    with warehouse(data) as con:
        return {
            table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)  # noqa: S608
            for table in TABLES
        }


def dbt_messages(instance, run_id, start: str):
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.user_message and e.user_message.startswith(start)
    ]


def test_a_backfill_is_one_run_and_equals_day_by_day_runs(tmp_path, monkeypatch):
    landscape = tmp_path / "landscape"
    simulate(landscape, start=date(2026, 3, 1), days=len(DAYS), seed=5, scale=0.03)
    one_run, by_day = tmp_path / "one_run", tmp_path / "by_day"
    shutil.copytree(landscape, one_run)
    shutil.copytree(landscape, by_day)

    # The whole graph for the range: one command, one run (the instance `make dev` uses).
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("BATCH_PLATFORM_DATA_DIR", str(one_run))
    with demo_apis(one_run):
        subprocess.run(
            [
                str(Path(sys.executable).with_name("dagster")),
                "asset",
                "materialize",
                "-m",
                "batch_platform.definitions",
                "--select",
                "*",
                "--partition-range",
                f"{DAYS[0]}...{DAYS[-1]}",
            ],
            env={**os.environ, "DAGSTER_HOME": str(home)},
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            timeout=600,
        )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        assert len(runs) == 1
        assert runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
        every_asset = {key for asset in defs.assets for key in asset.keys}
        assert set(runs[0].dagster_run.asset_selection) == every_asset
        run_id = runs[0].dagster_run.run_id
        # Two dbt invocations (partitioned models, whole tables); only the first has a window.
        assert len(dbt_messages(instance, run_id, "Running dbt command")) == 2
        windows = dbt_messages(instance, run_id, "dbt window")
        assert windows == [
            "dbt window [2026-03-01, 2026-03-03): BATCH_PLATFORM_WINDOW_START=2026-03-01, "
            "BATCH_PLATFORM_WINDOW_END=2026-03-03"
        ], windows
    assert (one_run / "analytics.duckdb").exists()

    # Day by day, each asset in its own single-day runs: extracts, then staging, then the
    # marts (which read their neighbours' staging days), then the whole-table models.
    monkeypatch.setenv("BATCH_PLATFORM_DATA_DIR", str(by_day))
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: no event-log fsyncs
        for selection in (EXTRACTS, STAGING, PARTITIONED_MARTS):
            for day in DAYS:
                materialize(by_day, instance, selection, partition_key=day)
        materialize(by_day, instance, NOT_PUBLISHED - EXTRACTS - STAGING - PARTITIONED_MARTS)
        assert len(instance.get_run_records()) == 3 * len(DAYS) + 1

    assert snapshot(one_run) == snapshot(by_day)


MONTH = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(30)]


def test_a_30_day_backfill_of_the_whole_graph_is_one_run_equal_to_30_daily_builds(
    tmp_path, monkeypatch
):
    """Thirty days through the platform as one run, against a day-by-day build of the same lake.

    The day-by-day side is 30 single-day dbt builds per layer in the order daily runs take
    (tests/dbt_day_by_day.py); the test above shows Dagster's own single-day runs equal a range
    run, this one shows the models' windows add up over a month, settlement days included.
    """
    landscape = tmp_path / "landscape"
    simulate(landscape, start=date(2026, 3, 1), days=len(MONTH), seed=13, scale=0.02)
    one_run = tmp_path / "one_run"
    shutil.copytree(landscape, one_run)

    monkeypatch.setenv("BATCH_PLATFORM_DATA_DIR", str(one_run))
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: no event-log fsyncs
        materialize(
            one_run,
            instance,
            NOT_PUBLISHED,
            tags={
                "dagster/asset_partition_range_start": MONTH[0],
                "dagster/asset_partition_range_end": MONTH[-1],
            },
        )
        runs = instance.get_run_records()
        assert len(runs) == 1
        windows = dbt_messages(instance, runs[0].dagster_run.run_id, "dbt window")
        assert len(windows) == 1, windows  # the 30 days in one dbt invocation
        assert windows[0].startswith("dbt window [2026-03-01, 2026-03-31)"), windows
        # every partitioned asset of the graph has all 30 days from that one run
        for key in (dg.AssetKey(["channel", "channel_daily_kpis"]), STAGING_ORDERS):
            assert instance.get_materialized_partitions(key) == set(MONTH), key

    # The same lake, built by day.
    by_day = tmp_path / "by_day"
    shutil.copytree(landscape, by_day)
    shutil.copytree(one_run / "lake", by_day / "lake")
    env = {**os.environ, "BATCH_PLATFORM_DATA_DIR": str(by_day)}
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "dbt_day_by_day.py")]
        + [MONTH[0], str(len(MONTH)), str(tmp_path / "dbt-target")],
        env=env,
        check=True,
        timeout=900,
    )

    expected, got = snapshot(by_day), snapshot(one_run)
    assert sum(len(rows) for rows in got.values()) > 1000
    for table in TABLES:
        assert got[table] == expected[table], table
