"""End to end with the daemon: a new day lands and its marts appear with no manual action."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from support import API_TOKEN

from batch_platform.paths import PROJECT_ROOT
from batch_platform.simulator import simulate

# Every run the daemon launches is a process that loads the code location (~8 s here) and each
# dbt invocation costs ~5-10 s, so this takes a few minutes: the sensors request one run per
# day, and warehouse-writing steps wait for the `duckdb_warehouse` pool, one at a time.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
START = date(2026, 3, 1)
NEW_DAY = "2026-03-02"
MARTS = [
    dg.AssetKey(["channel", "channel_daily_kpis"]),
    dg.AssetKey(["consistency", "reconciliation_daily_summary"]),
]
TIMEOUT_SECONDS = 600
LOGS = ("apis.log", "daemon.log", "webserver.log")  # the processes' output, in start order


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


def most_queued_at_once(records: list[dg.RunRecord]) -> int:
    """The most runs that were waiting in the run queue at the same moment, from the records
    (created, then started by the queued run coordinator): a sweep over the queued intervals."""
    edges = []
    for record in records:
        if record.start_time is not None:
            edges += [(record.create_timestamp.timestamp(), 1), (record.start_time, -1)]
    waiting = most = 0
    for _, step in sorted(edges):  # at the same instant a start (-1) counts before a creation
        waiting += step
        most = max(most, waiting)
    return most


def materialized(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> bool:
    return partition in instance.get_materialized_partitions(key)


@pytest.mark.timeout(TIMEOUT_SECONDS + 120)
def test_a_new_day_is_extracted_and_its_marts_built_by_sensors_and_automation(tmp_path):
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    simulate(data, start=START, days=1, seed=3, scale=0.02)
    # Create the instance's storage once, here, before three processes open it at the same time.
    dg.DagsterInstance.from_config(str(home)).dispose()
    api_port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BATCH_PLATFORM_DATA_DIR": str(data),
        "BATCH_PLATFORM_START_DATE": START.isoformat(),
        "BATCH_PLATFORM_END_DATE": "2026-03-03",  # the landscape's days and the appended one
        "BATCH_PLATFORM_API_TOKEN": API_TOKEN,
        "CATALOG_API_URL": f"http://127.0.0.1:{api_port}/catalog",
        "PROMOTIONS_API_URL": f"http://127.0.0.1:{api_port}/promotions",
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
    try:
        os.environ["DAGSTER_HOME"] = str(home)  # for DagsterInstance.get() in this process
        with dg.DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + TIMEOUT_SECONDS
            # The daemon reacts to the landscape on its own first ...
            while not instance.get_run_records(limit=1):
                assert time.monotonic() < deadline, "no run was started by the sensors"
                assert_alive(processes, tmp_path)
                time.sleep(2)
            # ... then a new day lands (and late files for the old days), with no one clicking.
            subprocess.run(
                [str(BIN / "batch-platform"), "simulate", "--append", "--days", "1"],
                env=env,
                check=True,
                capture_output=True,
            )
            while not all(materialized(instance, key, NEW_DAY) for key in MARTS):
                assert time.monotonic() < deadline, (
                    f"the marts of {NEW_DAY} were not materialised within {TIMEOUT_SECONDS} s"
                )
                assert_alive(processes, tmp_path)
                failed = instance.get_run_records(
                    filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])
                )
                assert not failed, f"runs failed: {[r.dagster_run.run_id for r in failed]}"
                time.sleep(3)
            runs = instance.get_run_records()
    finally:
        for process in reversed(processes):
            stop(process)
    statuses = {r.dagster_run.status for r in runs}
    assert dg.DagsterRunStatus.FAILURE not in statuses
    assert most_queued_at_once(runs) >= 2, "the sensors' runs should have been queued together"
    log = (tmp_path / "daemon.log").read_text()
    assert "database is locked" not in log and "Could not set lock" not in log
