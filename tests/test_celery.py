"""Steps on Celery workers: real RabbitMQ, real PostgreSQL instance storage, real worker processes.

The module makes its own RabbitMQ virtual host and its own PostgreSQL database (both removed at
the end), a DAGSTER_HOME from deploy/dagster.production.yaml, and starts two
`dagster-celery worker start` processes listening on both queues. Runs are launched the way an
operator launches them, with `dagster asset materialize`, with BATCH_PLATFORM_EXECUTOR=celery.
The lake they write is compared byte for byte with an in-process run of the same days.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_ui import BIN, PROJECT_ROOT, Process, free_port, process_groups, wait_until
from support import demo_apis, landscape_days, materialize_ok, postgres_url

from batch_platform import execution
from batch_platform.paths import DATA_DIR_ENV

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DAYS = landscape_days()[:4]
EXTRACTS = "key:raw/* and not key:raw/platform/quarantine"
WORKER_CONFIG = PROJECT_ROOT / "deploy" / "celery_worker.yaml"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(  # noqa: S603 - a fixed argument list
        [shutil.which("rabbitmqctl") or "rabbitmqctl", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A RabbitMQ virtual host of our own, so no other test's queues mix with ours."""
    if shutil.which("rabbitmqctl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmqctl (RabbitMQ) is required on CI and missing")
        pytest.skip("RabbitMQ (rabbitmqctl) is not installed here")
    vhost = f"bp_celery_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
        execution.check_broker(url)
        yield url
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory) -> Iterator[tuple[Path, dict[str, str]]]:
    """DAGSTER_HOME on a fresh PostgreSQL database, as deploy/dagster.production.yaml has it."""
    import psycopg2
    from psycopg2 import sql

    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"bp_celery_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.production.yaml", home / "dagster.yaml")
    pg = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": name,
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in pg.items():
                mp.setenv(key, value)
            # Creates the schema once, before several processes race to (docs/TESTING.md).
            dg.DagsterInstance.from_config(str(home)).dispose()
        yield home, pg
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


@dataclass
class Cluster:
    data: Path
    env: dict[str, str]  # what `dagster asset materialize` runs with
    home: Path
    workers: dict[str, Process]  # by the Celery worker name the step events carry

    def instance(self) -> dg.DagsterInstance:
        with pytest.MonkeyPatch.context() as mp:
            for key in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB"):
                mp.setenv(key, self.env[key])
            mp.setenv("DAGSTER_PG_PASSWORD", "")
            return dg.DagsterInstance.from_config(str(self.home))

    def materialize(self, first: str, last: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - a fixed argument list
            [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_platform.definitions"]
            + ["--select", EXTRACTS, "--partition-range", f"{first}...{last}"],
            env={**self.env, **env},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def cluster(landscape, broker, dagster_home, tmp_path_factory) -> Iterator[Cluster]:
    """Two Celery workers, each on both queues, over a private copy of the landscape."""
    home, pg = dagster_home
    data = tmp_path_factory.mktemp("celery") / "data"
    shutil.copytree(landscape, data)
    logs = tmp_path_factory.mktemp("celery_logs")
    with demo_apis(data), process_groups() as groups:
        env = {
            **os.environ,
            **pg,
            "DAGSTER_HOME": str(home),
            DATA_DIR_ENV: str(data),
            "BATCH_PLATFORM_START_DATE": DAYS[0],
            execution.EXECUTOR_ENV: execution.CELERY,
            execution.BROKER_ENV: broker,
            # The worker runs the venv's `celery`.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        workers = {}
        for letter in "ab":
            name = f"celery-{letter}-{uuid.uuid4().hex[:6]}"
            command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
            command += ["-y", str(WORKER_CONFIG), "-n", name]
            # One -q with both: Celery 5 keeps only the last of several -Q.
            command += ["-q", f"{execution.DEFAULT_QUEUE},{execution.WAREHOUSE_QUEUE}"]
            # One step at a time per worker: two workers, two cores.
            command += ["--", "--concurrency=1"]
            process = groups.start(name, command, env, logs / f"{name}.log")
            workers[f"{name}@{os.uname().nodename}"] = process
        for process in workers.values():
            wait_until(
                lambda p=process: " ready." in p.log.read_text(errors="replace"),
                120,
                f"{process.name} ready",
                (process,),
                interval=0.5,
            )
        yield Cluster(data, env, home, workers)


@pytest.fixture(scope="module")
def in_process_lake(landscape, tmp_path_factory) -> Path:
    """The raw lake of the same days extracted in process, the default executor."""
    from batch_platform.definitions import extracts

    data = tmp_path_factory.mktemp("in_process") / "data"
    shutil.copytree(landscape, data)
    with pytest.MonkeyPatch.context() as mp, demo_apis(data):
        mp.setenv(DATA_DIR_ENV, str(data))
        for day in DAYS:
            materialize_ok(extracts, partition_key=day)
    return data / "lake"


def _lake_files(lake: Path, days: list[str]) -> dict[str, bytes]:
    return {
        str(path.relative_to(lake)): path.read_bytes()
        for path in sorted(lake.rglob("*"))
        if path.is_file() and any(f"dt={day}" in path.parts for day in days)
    }


def _run_of(instance: dg.DagsterInstance, output: str) -> dg.DagsterRun:
    """The latest run; `output` (the command's) for the failure message."""
    records = instance.get_run_records(limit=1)
    assert records, f"no run was created\n{output[-3000:]}"
    return records[0].dagster_run


def _workers_by_step(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, Celery worker) for every step a worker began, in the order they began."""
    started = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        metadata = event.engine_event_data.metadata if event.engine_event_data else {}
        if "Celery worker" in metadata:
            started.append((event.step_key, metadata["Celery worker"].value))
    return started


def test_extracts_on_two_workers_equal_in_process(cluster, in_process_lake):
    """Every extract for two days, one run: steps on both workers, the lake byte-identical."""
    result = cluster.materialize(DAYS[0], DAYS[1])
    output = result.stdout + result.stderr
    with cluster.instance() as instance:
        run = _run_of(instance, output)
        assert run.status == dg.DagsterRunStatus.SUCCESS, output[-3000:]
        by_step = _workers_by_step(instance, run.run_id)
        materialized = {
            (record.asset_key.to_user_string(), record.partition_key)
            for record in instance.get_event_records(
                dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION)
            )
        }
    from batch_platform.definitions import extract_keys, extracts

    assert sorted(step for step, _ in by_step) == sorted(asset.op.name for asset in extracts)
    assert {worker for _, worker in by_step} == set(cluster.workers), by_step
    assert materialized == {(k.to_user_string(), d) for k in extract_keys for d in DAYS[:2]}
    assert _lake_files(cluster.data / "lake", DAYS[:2]) == _lake_files(in_process_lake, DAYS[:2])


def test_broker_unreachable_fails_the_run_in_one_line(cluster):
    """A closed port as broker: the run fails before any step, naming the broker, no password."""
    port = free_port()
    url = f"pyamqp://guest:not-the-password@127.0.0.1:{port}//"
    result = cluster.materialize(DAYS[0], DAYS[0], **{execution.BROKER_ENV: url})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    line = (
        f"Celery broker pyamqp://guest:**@127.0.0.1:{port}// ({execution.BROKER_ENV}) "
        "is unreachable"
    )
    assert line in output, output[-3000:]
    assert "not-the-password" not in output
    with cluster.instance() as instance:
        run = _run_of(instance, output)
        assert run.status == dg.DagsterRunStatus.FAILURE
        logs = instance.all_logs(run.run_id)
        assert not [r for r in logs if r.dagster_event and r.dagster_event.is_step_start]
        assert "not-the-password" not in "".join(str(r) for r in logs)
        failure = [r for r in logs if r.dagster_event and r.dagster_event.is_run_failure]
        assert failure and line in str(failure[-1]), [str(r)[:300] for r in logs]
