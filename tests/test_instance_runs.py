"""Runs on a real Dagster instance: warehouse writers queue on the pool, and no secret is recorded.

One module-scoped set-up serves both tests, because it is the expensive part: a fresh
DAGSTER_HOME holding deploy/dagster.yaml (SQLite storage, the queued run coordinator, the
`duckdb_warehouse` pool limit), a gRPC code server started from workspace.yaml as the webserver
and the daemon start it, the demo REST API on 127.0.0.1 and a PostgreSQL source, all configured
with distinctive secrets. On it:

- extract runs, in process, succeed and fail with the token, the password and the PII key set;
- a real `dagster-webserver` is started, its sensors turned off (so the daemon launches no runs
  of its own), and two dbt runs that write the warehouse are submitted through its GraphQL API
  (as the UI's Materialize button does); then a real `dagster-daemon run` dequeues them into
  run worker processes, while the test watches their statuses.

Then every byte the instance stored (event log, run storage, compute logs), the dbt artefacts
of those runs and the webserver's GraphQL answers about them are scanned for the secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi
import dagster as dg
import duckdb
import pytest
from dagster_ui import (
    BIN,
    WORKSPACE,
    graphql,
    launch_asset_run,
    process_groups,
    stop_sensors,
    wait_until,
)
from support import LANDSCAPE_START, postgres_url

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.extract.factory import build_extract_asset
from batch_platform.paths import DATA_DIR_ENV, DBT_PROJECT_DIR, PROJECT_ROOT
from batch_platform.pii import SALT_ENV
from batch_platform.registry import load_registry
from batch_platform.simulator.api_server import create_app, serve_in_thread
from batch_platform.transform.dbt_assets import WAREHOUSE_POOL

pytestmark = pytest.mark.slow

TOKEN = "tok-7f3a9c2e-never-log-me"
REJECTED_TOKEN = "tok-5d1b8e40-rejected-never-log"
PASSWORD = "pw-91c4e7a2-never-log"
SALT = "salt-3e8d0f6b-never-log"
SECRETS = (TOKEN, REJECTED_TOKEN, PASSWORD, SALT)
DAY = LANDSCAPE_START.isoformat()
# Two runs that write the warehouse: one calls pii_mask() (so uses the PII key), one does not.
WRITERS = [
    dg.AssetKey(["staging", "stg_customers__customers"]),
    dg.AssetKey(["middle_platform", "dim_products"]),
]
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class InstanceRuns:
    home: Path
    data: Path
    extract_runs: dict[str, dg.ExecuteInProcessResult]
    writer_runs: list[str]  # run ids of the queued warehouse writers, in submission order
    statuses_seen: list[list[dg.DagsterRunStatus]]  # the writers' statuses at each poll
    graphql: list[dict] = field(default_factory=list)  # every GraphQL answer, raw
    has_postgres: bool = False


def _postgres_source(server: str | None) -> tuple[str, str] | None:
    """A fresh schema with a customers table (one row breaks the contract), and its URL with
    the distinctive password (PostgreSQL here trusts 127.0.0.1, so any password connects)."""
    if server is None:
        return None
    schema = f"bp_secrets_{uuid.uuid4().hex[:10]}"
    with adbc_driver_postgresql.dbapi.connect(server, autocommit=True) as con:
        with con.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
            cursor.execute(
                f'CREATE TABLE "{schema}".customers (customer_id text, email text, phone text, '
                "full_name text, country text, created_at timestamp, updated_at timestamp)"
            )
            cursor.execute(
                f'INSERT INTO "{schema}".customers VALUES '  # noqa: S608 - our schema
                f"('c1', 'ann@example.com', NULL, 'Ann Lee', 'DE', '2026-01-05', '{DAY} 08:00'), "
                f"('c2', NULL, NULL, 'Bo Chan', 'FR', '2026-01-05', '{DAY} 09:00')"
            )
    parts = urlsplit(server)
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    query = urlencode({"options": f"-c search_path={schema}"}, quote_via=quote)
    url = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return schema, url


def _drop_schema(server: str, schema: str) -> None:
    with adbc_driver_postgresql.dbapi.connect(server, autocommit=True) as con:
        with con.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def instance_runs(pipeline, tmp_path_factory):
    base = tmp_path_factory.mktemp("instance-runs")
    data, home = base / "data", base / "home"
    shutil.copytree(pipeline, data)
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    specs = {s.path: s for s in load_registry(load_manifest())}
    server = postgres_url()
    postgres = _postgres_source(server)
    with (
        pytest.MonkeyPatch.context() as mp,
        serve_in_thread(create_app(data, TOKEN)) as api,
    ):
        mp.setenv("DAGSTER_HOME", str(home))
        mp.setenv(DATA_DIR_ENV, str(data))
        mp.setenv(SALT_ENV, SALT)
        mp.setenv("CATALOG_API_URL", f"{api}/catalog")
        mp.setenv("CATALOG_API_TOKEN", TOKEN)
        mp.setenv("PROMOTIONS_API_URL", f"{api}/promotions")
        mp.setenv("PROMOTIONS_API_TOKEN", REJECTED_TOKEN)  # the API refuses it: a failed run
        mp.delenv("BATCH_PLATFORM_API_TOKEN", raising=False)
        if postgres:
            mp.setenv("CUSTOMERS_DB_URL", postgres[1])
            mp.setenv("INVENTORY_DB_URL", postgres[1])  # no inventory tables: a failed run
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                extracts = ["catalog/products", "promotions/campaigns"]
                if postgres:
                    extracts += ["customers/customers", "inventory/stock_levels"]
                extract_runs = {
                    path: dg.materialize(
                        [build_extract_asset(specs[path], platform_days)],
                        partition_key=DAY,
                        instance=instance,
                        raise_on_error=False,
                    )
                    for path in extracts
                }
            runs = InstanceRuns(home, data, extract_runs, [], [], [], bool(postgres))
            _queue_two_writers(runs, base)
            yield runs
        finally:
            if postgres:
                _drop_schema(server, postgres[0])


def _queue_two_writers(runs: InstanceRuns, base: Path) -> None:
    """Webserver up, sensors off, two writers submitted, then the daemon dequeues them.

    Records the writers' statuses at every poll, and the webserver's GraphQL answers at the end.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the fixture's secrets and DAGSTER_HOME
    with process_groups() as processes:
        url, webserver = processes.start_webserver(env, base / "webserver.log")
        stop_sensors(url, webserver)
        runs.writer_runs = [launch_asset_run(url, key) for key in WRITERS]
        daemon = processes.start(
            "dagster-daemon",
            [str(BIN / "dagster-daemon"), "run", *WORKSPACE],
            env,
            base / "daemon.log",
        )
        with dg.DagsterInstance.from_config(str(runs.home)) as instance:

            def finished() -> bool:
                statuses = [instance.get_run_by_id(run_id).status for run_id in runs.writer_runs]
                runs.statuses_seen.append(statuses)
                return all(status in TERMINAL for status in statuses)

            wait_until(finished, 400, "the queued writers to finish", (webserver, daemon), 0.5)
            runs.graphql = _graphql_answers(url, instance)


# --- Two warehouse writers at once ------------------------------------------------------------


def _writer_step(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float, bool]:
    """When the run's warehouse-writing step started and ended, and whether it was held back."""
    stamps, blocked = {}, False
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
            stamps[event.event_type] = entry.timestamp
        blocked |= (entry.user_message or "").startswith(
            f"Step blocked by limit for pool {WAREHOUSE_POOL}"
        )
    return stamps[dg.DagsterEventType.STEP_START], stamps[dg.DagsterEventType.STEP_SUCCESS], blocked


def test_warehouse_writers_submitted_together_queue_and_none_fails(instance_runs):
    with dg.DagsterInstance.from_config(str(instance_runs.home)) as instance:
        records = [instance.get_run_record_by_id(run_id) for run_id in instance_runs.writer_runs]
        failures = {
            r.dagster_run.run_id: [
                e.dagster_event.event_specific_data.error.message.strip().splitlines()[-1]
                for e in instance.all_logs(r.dagster_run.run_id)
                if e.dagster_event
                and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
            ]
            for r in records
            if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
        }
        assert not failures, f"a warehouse writer failed: {failures}"
        first, second = sorted(_writer_step(instance, r.dagster_run.run_id) for r in records)
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots == []
    # The second writer started only once the first had finished: it waited, either queued
    # (pool granularity `run`) or blocked at its step (granularity `op`).
    assert first[1] <= second[0], (
        "two warehouse writers ran at the same time; with `granularity: run` in "
        "deploy/dagster.yaml the first dequeue pass after the pool is first used launches every "
        "queued writer at once "
        "(see docs/RELIABILITY.md)"
    )
    queued = dg.DagsterRunStatus.QUEUED
    held_in_queue = any(
        queued in statuses and set(statuses) != {queued} for statuses in instance_runs.statuses_seen
    )
    assert held_in_queue or second[2]
    with duckdb.connect(str(instance_runs.data / "warehouse.duckdb"), read_only=True) as con:
        for key in WRITERS:
            assert con.execute(f"SELECT count(*) FROM {'.'.join(key.path)}").fetchone()[0] > 0  # noqa: S608


def test_without_the_pool_a_second_warehouse_writer_fails_on_the_lock(instance_runs, tmp_path):
    """Why the pool exists: DuckDB lets one process write a database file."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(instance_runs.data / "warehouse.duckdb", warehouse)
    with duckdb.connect(str(warehouse)):
        rogue = subprocess.run(
            [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1])", warehouse],
            capture_output=True,
            text=True,
        )
    assert rogue.returncode != 0 and "Could not set lock" in rogue.stderr, rogue.stderr


# --- No secret in what the instance records or serves ------------------------------------------

_METADATA = """
fragment Meta on MetadataEntry {
  __typename label description
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
  ... on MarkdownMetadataEntry { mdStr }
  ... on IntMetadataEntry { intRepr }
  ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
}
"""
RUN_LOGS = (
    _METADATA
    + """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on MaterializationEvent { metadataEntries { ...Meta } }
        ... on ObservationEvent { metadataEntries { ...Meta } }
        ... on ExecutionStepFailureEvent {
          error { message stack causes { message stack } }
          failureMetadata { metadataEntries { ...Meta } }
        }
        ... on RunFailureEvent { pipelineName }
        ... on EngineEvent { metadataEntries { ...Meta } error { message stack } }
        ... on AssetCheckEvaluationEvent { evaluation { metadataEntries { ...Meta } } }
      }
    }
    ... on PythonError { message }
  }
}
"""
)
EVERYTHING_ELSE = (
    _METADATA
    + """
query EverythingElse {
  runsOrError { ... on Runs { results { runId status tags { key value } runConfigYaml } } }
  assetNodes {
    assetKey { path }
    description
    metadataEntries { ...Meta }
    assetMaterializations(limit: 20) { metadataEntries { ...Meta } }
  }
}
"""
)


def _graphql_answers(url: str, instance: dg.DagsterInstance) -> list[dict]:
    answers = [graphql(url, EVERYTHING_ELSE)]
    for record in instance.get_run_records():
        answers.append(graphql(url, RUN_LOGS, {"runId": record.dagster_run.run_id}))
    return answers


def _found(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_no_token_password_or_pii_key_reaches_logs_events_or_graphql(instance_runs):
    if not instance_runs.has_postgres:
        pytest.skip("PostgreSQL is unreachable: the password half of this scan needs it")
    runs = instance_runs.extract_runs
    # The set-up did what the scan needs: runs that used every secret, some failing.
    assert runs["catalog/products"].success and runs["customers/customers"].success
    assert not runs["promotions/campaigns"].success and not runs["inventory/stock_levels"].success
    with dg.DagsterInstance.from_config(str(instance_runs.home)) as instance:
        statuses = {r.dagster_run.status for r in instance.get_run_records()}
        messages = [
            e.dagster_event.event_specific_data.error.message
            for record in instance.get_run_records()
            for e in instance.all_logs(record.dagster_run.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
    assert dg.DagsterRunStatus.SUCCESS in statuses and dg.DagsterRunStatus.FAILURE in statuses
    shown = "\n".join(messages)
    assert "$PROMOTIONS_API_TOKEN" in shown  # the failures say which variable, not its value
    assert "$INVENTORY_DB_URL (postgresql://postgres:***@" in shown

    # 1. Every file of the instance: SQLite run and event storage, compute logs, everything.
    stored = [p for p in instance_runs.home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored)
    assert any(p.suffix in (".out", ".err") for p in stored)  # the runs' captured output
    leaked = {str(p): _found(p.read_bytes().decode("utf-8", "replace")) for p in stored}
    assert not {p: s for p, s in leaked.items() if s}, leaked
    everything = b"".join(p.read_bytes() for p in stored)
    assert b"rows_loaded" in everything and b"stg_customers__customers" in everything

    # 2. The dbt artefacts of the runs that wrote the warehouse (logs, compiled SQL, results).
    artefacts = [
        p
        for run_id in instance_runs.writer_runs
        for folder in DBT_PROJECT_DIR.joinpath("target").glob(f"*-{run_id[:7]}-*")
        for p in folder.rglob("*")
        if p.is_file()
    ]
    assert any(p.name == "run_results.json" for p in artefacts)
    assert not {
        str(p): _found(p.read_text(errors="replace"))
        for p in artefacts
        if _found(p.read_text(errors="replace"))
    }

    # 3. What the UI is told: GraphQL answers about every run, asset and materialisation.
    text = json.dumps(instance_runs.graphql)
    assert _found(text) == []
    assert "rows_quarantined" in text and "$PROMOTIONS_API_TOKEN" in text
    assert "missing required field email" in text  # the customers quarantine reason
