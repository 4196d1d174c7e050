"""Shared fixtures: a small demo landscape, and the whole pipeline built over it once.

The landscape is generated once per session; tests that write get their own copy of the data
folder (BATCH_PLATFORM_DATA_DIR points at it), so no test sees another's writes.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from support import (
    API_TOKEN,
    LANDSCAPE_DAYS,
    LANDSCAPE_SCALE,
    LANDSCAPE_SEED,
    LANDSCAPE_START,
    build_pipeline,
    landscape_days,
)

from batch_platform.paths import DATA_DIR_ENV

# Run first: the longest tests, so that with `pytest -n 2` (make test) neither core is left
# with a long test at the end while the other idles.
LONGEST_FIRST = (
    "test_ui_browser.py",
    "test_daemon_e2e.py",
    "test_dead_runs.py",
    "test_bench_quick.py",
    "test_backfill.py",
    "test_celery.py",
)
# Tests that share a module or session fixture too costly to build twice run on one worker.
SHARED_FIXTURES = {"pipeline": "pipeline", "built_pipeline": "pipeline"}


def pytest_collection_modifyitems(config, items):
    """Group tests by the expensive fixture they share and start the longest ones first.

    Under pytest-xdist's `--dist loadgroup` a group runs on one worker, so the whole graph is
    built once per run and a module's Dagster webserver is started once; without xdist the
    markers are ignored. The order is the same in every worker, as xdist requires.
    """
    for item in items:
        group = next((g for f, g in SHARED_FIXTURES.items() if f in item.fixturenames), None)
        if item.path.name == "test_ui_browser.py":
            group = "browser"
        if group:
            item.add_marker(pytest.mark.xdist_group(group))

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def pytest_configure(config):
    # Known test secrets. A fresh clone's data/ was not made by the simulator, so the platform
    # refuses the demo stand-ins there (batch_platform.demo_mode), and tests compute masked
    # values with a key they know.
    os.environ.setdefault("BATCH_PLATFORM_PII_SALT", "test-salt-not-secret")
    os.environ.setdefault("BATCH_PLATFORM_API_TOKEN", API_TOKEN)


@pytest.fixture(scope="session")
def landscape(tmp_path_factory) -> Path:
    """A generated demo landscape (read-only by convention; copy it before writing)."""
    from batch_platform.simulator import simulate

    folder = tmp_path_factory.mktemp("landscape") / "data"
    simulate(
        folder,
        start=LANDSCAPE_START,
        days=LANDSCAPE_DAYS,
        seed=LANDSCAPE_SEED,
        scale=LANDSCAPE_SCALE,
    )
    return folder


@pytest.fixture(scope="session")
def ground_truth(landscape) -> dict:
    return json.loads((landscape / "landscape.json").read_text())


@pytest.fixture
def data_dir(landscape, tmp_path, monkeypatch) -> Path:
    """A private copy of the landscape, set as the platform's data folder."""
    folder = tmp_path / "data"
    shutil.copytree(landscape, folder)
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


@dataclass(frozen=True)
class BuiltPipeline:
    data: Path
    dbt_runs: list  # the dbt runs' ExecuteInProcessResults, for their events and metadata


@pytest.fixture(scope="session")
def built_pipeline(landscape, tmp_path_factory) -> BuiltPipeline:
    """The whole graph built once over a private copy of the landscape (do not write to it)."""
    folder = tmp_path_factory.mktemp("pipeline") / "data"
    shutil.copytree(landscape, folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_DIR_ENV, str(folder))
        runs = build_pipeline(folder, landscape_days())
    return BuiltPipeline(folder, runs)


@pytest.fixture(scope="session")
def pipeline(built_pipeline) -> Path:
    """The data folder of the built pipeline (do not write to it)."""
    return built_pipeline.data


def _postgres_admin() -> dict[str, str | int]:
    """psycopg2 connection arguments for a reachable PostgreSQL server's `test` database.

    $TEST_POSTGRES_URL when set, else 127.0.0.1:5432 with trust authentication as `postgres`,
    then as the current user (a root container has a `root` role, a Debian host a `postgres`
    one). Skips when none answers; fails when CI=true.
    """
    import getpass

    import psycopg2

    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        parts = urlsplit(configured)
        candidates = [
            {
                "host": parts.hostname or "127.0.0.1",
                "port": parts.port or 5432,
                "user": unquote(parts.username or "postgres"),
                "password": unquote(parts.password or ""),
                "dbname": parts.path.lstrip("/") or "test",
            }
        ]
    else:
        candidates = [
            {"host": "127.0.0.1", "port": 5432, "user": user, "password": "", "dbname": "test"}
            for user in dict.fromkeys(("postgres", getpass.getuser()))
        ]
    errors = []
    for arguments in candidates:
        try:
            psycopg2.connect(connect_timeout=5, **arguments).close()
            return arguments
        except psycopg2.Error as error:
            where = f"{arguments['user']}@{arguments['host']}:{arguments['port']}"
            errors.append(f"{where}: {str(error).strip().splitlines()[0]}")
    reason = "PostgreSQL is unreachable: " + "; ".join(errors)
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dagster_postgres_database() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for Dagster's instance storage, dropped after the session.

    Yields the DAGSTER_PG_* variables deploy/dagster.production.yaml reads. The name is unique
    (two pytest-xdist workers or two checkouts never share one); dropping terminates the
    connections the daemon's and webserver's processes may have left.
    """
    import psycopg2
    from psycopg2 import sql

    admin = _postgres_admin()
    name = f"bp_dagster_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(**admin)
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield {
            "DAGSTER_PG_HOST": str(admin["host"]),
            "DAGSTER_PG_PORT": str(admin["port"]),
            "DAGSTER_PG_USER": str(admin["user"]),
            "DAGSTER_PG_PASSWORD": str(admin["password"]),
            "DAGSTER_PG_DB": name,
        }
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.close()
