"""End to end with the daemon: a fresh instance bootstraps, a new day reaches the snapshot.

The same story on both instance configurations the project ships: the embedded SQLite one
(deploy/dagster.yaml, `make dev`) and the production one (deploy/dagster.production.yaml,
PostgreSQL storage for runs, event log, schedules, sensor cursors and pools).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterEventType
from support import API_TOKEN, files_under

from batch_platform.definitions import defs
from batch_platform.paths import PROJECT_ROOT
from batch_platform.simulator import simulate
from batch_platform.transform.dbt_assets import WAREHOUSE_POOL
from benchmarks.harness import sensor_tick_records

# Every run the daemon launches is a process that loads the code location (~8 s here) and each
# dbt invocation costs ~5-10 s, so this takes a few minutes.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
START = date(2026, 3, 1)
NEW_DAY = "2026-03-03"
SNAPSHOT = dg.AssetKey("analytics_snapshot")
QUARANTINE_SUMMARY = dg.AssetKey(["consistency", "quarantine_daily_summary"])
ALL_ASSETS = [key for asset in defs.assets for key in asset.keys]
ALL_CHECKS = {key for asset in defs.assets for key in asset.check_keys}
TIMEOUT_SECONDS = 600
# Whatever could still launch a run once everything is built.
QUIET_SENSORS = ("platform_automation", "new_data_sensor", "downstream_sensor")
LOGS = ("apis.log", "daemon.log", "webserver.log")  # the processes' output, in start order
WAREHOUSE_STEPS = {asset.op.name for asset in defs.assets if asset.op.pool == WAREHOUSE_POOL}
INSTANCE_YAML = {"sqlite": "dagster.yaml", "postgres": "dagster.production.yaml"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def assert_alive(processes: list[subprocess.Popen], logs: Path) -> None:
    """Fail with the end of a dead server's log, so CI shows why it died."""
    for process, name in zip(processes, LOGS, strict=True):
        if process.poll() is not None:
            tail = (logs / name).read_text(errors="replace")[-3000:]
            pytest.fail(f"{name.removesuffix('.log')} exited with {process.returncode}:\n{tail}")


def describe(records: list[dg.RunRecord]) -> str:
    """Each run's trigger, days and assets, for a failure message."""
    lines = []
    for record in records:
        run, tags = record.dagster_run, record.dagster_run.tags
        trigger = tags.get("batch_platform/trigger") or (
            "automation" if "dagster/asset_evaluation_id" in tags else "other"
        )
        days = tags.get("dagster/partition") or (
            f"{tags.get('dagster/asset_partition_range_start')}.."
            f"{tags.get('dagster/asset_partition_range_end')}"
        )
        assets = sorted(key.to_user_string() for key in run.asset_selection or ())
        lines.append(f"{run.run_id[:8]} {run.status.value} {trigger} {days} {assets}")
    return "\n".join(lines)


def finished(instance: dg.DagsterInstance) -> bool:
    """Every run the daemon launched has ended."""
    unfinished = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    return not instance.get_run_records(filters=dg.RunsFilter(statuses=unfinished))


def latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else 0


def wait_until(condition, deadline: float, what: str, processes, logs: Path, instance) -> None:
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {TIMEOUT_SECONDS} s"
        assert_alive(processes, logs)
        failed = instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])
        )
        assert not failed, f"runs failed: {[r.dagster_run.run_id for r in failed]}"
        time.sleep(3)


def instance_environment(storage: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """What the instance configuration `storage` needs from the environment, beyond the
    variables every variant sets.

    SQLite: nothing. PostgreSQL runs as production does: deploy/dagster.production.yaml read
    unchanged (its DAGSTER_PG_* variables point at a fresh database) and BATCH_PLATFORM_ENV=
    production, so the platform refuses the demo's public stand-ins and takes the PII key and
    the API token from the environment, as a deployment must set them (the demo REST service is
    given the same token). Production also turns the daily catch-up schedule on; it fires at
    01:30 only and requests yesterday, a day outside this landscape.
    """
    if storage == "sqlite":
        return {}
    return {
        **request.getfixturevalue("dagster_postgres_database"),
        "BATCH_PLATFORM_ENV": "production",
        "BATCH_PLATFORM_PII_SALT": "e2e-production-salt-not-secret",
    }


def warehouse_step_overlaps(instance: dg.DagsterInstance, runs: list[dg.RunRecord]) -> list:
    """Pairs of warehouse-writing steps (of any runs) that ran at the same time: the
    `duckdb_warehouse` pool must keep them apart."""
    ends = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    spans = {}
    for run in runs:
        run_id = run.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, *ends}):
            if entry.step_key in WAREHOUSE_STEPS:
                span = spans.setdefault((run_id[:8], entry.step_key), [None, None])
                span[entry.dagster_event_type in ends] = entry.timestamp
    ordered = sorted(spans.items(), key=lambda item: item[1][0])
    return [
        (first, second)
        for (first, (_, end)), (second, (start, _)) in zip(ordered, ordered[1:], strict=False)
        if end is None or start < end
    ]


def snapshot_rows(data: Path, sql: str, *params) -> list[tuple]:
    with duckdb.connect(str(data / "analytics.duckdb"), read_only=True) as connection:
        return connection.execute(sql, list(params)).fetchall()


@pytest.mark.timeout(TIMEOUT_SECONDS + 180)
@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_fresh_instance_is_bootstrapped_and_a_new_day_reaches_the_snapshot_in_few_runs(
    tmp_path, storage, request, monkeypatch
):
    """`make dev`'s story with the real daemon, nobody clicking, on SQLite and on PostgreSQL.

    A fresh instance builds the whole landscape in a few runs (extracts, then everything above
    them) and publishes the snapshot; every asset is materialised and every check evaluated.
    Then a new day lands (with late files for old days): at most 3 runs take it to the
    published snapshot, the quarantine summary included, and nothing is written under the
    project's own data/ folder. Afterwards the automation requests
    nothing more: nothing a run just built is built again. Throughout, the warehouse pool
    admits one writer at a time. The PostgreSQL variant runs in production mode
    (`instance_environment` says what it sets).
    """
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    project_data = files_under(PROJECT_ROOT / "data")
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / INSTANCE_YAML[storage], home / "dagster.yaml")
    simulate(data, start=START, days=2, seed=3, scale=0.02)
    variant = instance_environment(storage, request)
    for name, value in variant.items():  # this process opens the instance too
        monkeypatch.setenv(name, value)
    # Create the instance's storage once, here, before three processes open it at the same time.
    dg.DagsterInstance.from_config(str(home)).dispose()
    api_port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BATCH_PLATFORM_DATA_DIR": str(data),
        "BATCH_PLATFORM_START_DATE": START.isoformat(),
        "BATCH_PLATFORM_END_DATE": "2026-03-04",  # the landscape's days and the appended one
        "BATCH_PLATFORM_API_TOKEN": API_TOKEN,
        "CATALOG_API_URL": f"http://127.0.0.1:{api_port}/catalog",
        "PROMOTIONS_API_URL": f"http://127.0.0.1:{api_port}/promotions",
        **variant,
    }
    processes = [
        start(
            [str(BIN / "batch-platform"), "serve-apis", "--port", str(api_port)],
            env,
            tmp_path / "apis.log",
        ),
        start(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            env,
            tmp_path / "daemon.log",
        ),
        start(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-w",
                "workspace.yaml",
            ],
            env,
            tmp_path / "webserver.log",
        ),
    ]
    args = (processes, tmp_path)
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(home))  # for DagsterInstance.get() in this process
        with dg.DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + TIMEOUT_SECONDS
            # 1. The bootstrap: the daemon builds everything on its own.
            wait_until(
                lambda: latest_storage_id(instance, SNAPSHOT) and finished(instance),
                deadline,
                "the bootstrap did not publish the snapshot",
                *args,
                instance,
            )
            bootstrap = instance.get_run_records()
            for key in ALL_ASSETS:
                assert instance.fetch_materializations(key, limit=1).records, f"{key} missing"
            evaluated = {
                record.asset_check_evaluation.asset_check_key
                for run in bootstrap
                for record in instance.all_logs(
                    run.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
                )
            }
            assert ALL_CHECKS <= evaluated, f"checks never run: {sorted(ALL_CHECKS - evaluated)}"
            assert (data / "analytics.duckdb").exists()

            # 2. A new day lands (and late files for the old days), with no one clicking.
            published = latest_storage_id(instance, SNAPSHOT)
            summary = latest_storage_id(instance, QUARANTINE_SUMMARY)
            subprocess.run(
                [str(BIN / "batch-platform"), "simulate", "--append", "--days", "1"],
                env=env,
                check=True,
                capture_output=True,
            )
            appended = time.time()
            wait_until(
                lambda: latest_storage_id(instance, SNAPSHOT) > published and finished(instance),
                deadline,
                f"the snapshot was not published with {NEW_DAY}",
                *args,
                instance,
            )
            summary_rebuilt = latest_storage_id(instance, QUARANTINE_SUMMARY) > summary
            # 3. Quiet afterwards: after two more ticks of the automation and of both sensors,
            # no run was added.
            settled, since = len(instance.get_run_records()), time.time()
            wait_until(
                lambda: all(
                    sum(1 for tick in sensor_tick_records(instance, s, since) if tick.end_timestamp)
                    >= 2
                    for s in QUIET_SENSORS
                ),
                time.monotonic() + 180,
                "the sensors did not tick twice after the new day",
                *args,
                instance,
            )
            assert_alive(processes, tmp_path)
            runs = instance.get_run_records()
            pool = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
            overlaps = warehouse_step_overlaps(instance, runs)
    finally:
        for process in reversed(processes):
            stop(process)
    assert len(bootstrap) <= 3, describe(bootstrap)
    new_day_runs = [r for r in runs if r.create_timestamp.timestamp() >= appended]
    assert 1 <= len(new_day_runs) <= 3, describe(new_day_runs)
    assert len(runs) == settled, "runs after everything was built: " + describe(runs)
    assert dg.DagsterRunStatus.FAILURE not in {r.dagster_run.status for r in runs}
    assert summary_rebuilt, "the quarantine summary was not rebuilt after the new day's extracts"
    assert (pool.slot_count, pool.claimed_slots) == (1, []), pool
    assert overlaps == [], f"warehouse steps ran at the same time: {overlaps}"

    # The published snapshot holds the new day exactly as the simulator made it.
    truth = json.loads((data / "landscape.json").read_text())
    kpis = snapshot_rows(
        data,
        "select channel, orders, gmv from channel.channel_daily_kpis "
        "where activity_date = ? order by channel",
        date.fromisoformat(NEW_DAY),
    )
    assert kpis == sorted(
        (channel, v["orders"], Decimal(v["gmv"]))
        for channel, v in truth["channels"][NEW_DAY].items()
    )
    quarantined = snapshot_rows(
        data,
        "select source, sum(records) from consistency.quarantine_daily_summary "
        "where partition_date = ? group by source order by source",
        date.fromisoformat(NEW_DAY),
    )
    expected = sorted(
        (
            source,
            figures["partitions"][NEW_DAY]["malformed"] + figures["partitions"][NEW_DAY]["invalid"],
        )
        for source, figures in truth["sources"].items()
        if figures["access"] == "events"
        and figures["partitions"][NEW_DAY]["malformed"] + figures["partitions"][NEW_DAY]["invalid"]
    )
    assert expected, "the new day should carry quarantined records"
    assert quarantined == expected
    log = (tmp_path / "daemon.log").read_text()
    assert "database is locked" not in log and "Could not set lock" not in log
    # Every process (simulator, APIs, daemon, runs, dbt, publish) kept to BATCH_PLATFORM_DATA_DIR.
    assert files_under(PROJECT_ROOT / "data") == project_data, "written under the project's data/"
