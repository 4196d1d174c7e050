"""Shared fixtures: a small demo landscape, and the whole pipeline built over it once.

The landscape is generated once per session; tests that write get their own copy of the data
folder (BATCH_PLATFORM_DATA_DIR points at it), so no test sees another's writes.
"""

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    API_TOKEN,
    LANDSCAPE_DAYS,
    LANDSCAPE_SCALE,
    LANDSCAPE_SEED,
    LANDSCAPE_START,
    build_pipeline,
    landscape_days,
    scratch,
)

from batch_platform.paths import DATA_DIR_ENV
from benchmarks.deploy_env import adopt_platform_environment
from benchmarks.postgres_storage import fresh_database

# Run first: the longest tests, so that with `pytest -n 2` (make test) neither core is left
# with a long test at the end while the other idles.
LONGEST_FIRST = (
    "test_ui_browser.py",
    "test_daemon_e2e.py",
    "test_postgres_outage.py",
    "test_dead_runs.py",
    "test_spark_warehouse.py",
    "test_bench_quick.py",
    "test_backfill.py",
    "test_celery.py",
)
# Tests that share a module or session fixture too costly to build twice run on one worker.
SHARED_FIXTURES = {"pipeline": "pipeline", "built_pipeline": "pipeline"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests by the expensive fixture they share and start the longest ones first.

    Under pytest-xdist's `--dist loadgroup` a group runs on one worker, so the whole graph is
    built once per run and a module's Dagster webserver is started once; without xdist the
    markers are ignored. The order is the same in every worker, as xdist requires. First
    (`tryfirst`): xdist reads the group marks in this same hook, so marks added after it
    would be ignored and every worker would build the shared fixtures again.
    """
    for item in items:
        group = next((g for f, g in SHARED_FIXTURES.items() if f in item.fixturenames), None)
        if item.path.name == "test_ui_browser.py":
            group = "browser"
        if item.path.name == "test_spark_warehouse.py":
            group = "spark"  # one module fixture: both engines built once
        if group:
            item.add_marker(pytest.mark.xdist_group(group))

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def pytest_collection_finish(session):
    """Refuse to run ungrouped: xdist marks a grouped test's id with `@<group>`. Without it the
    suite still passes but takes minutes longer (each worker builds the shared fixtures)."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(
                f"pytest-xdist did not group {item.nodeid} (--dist loadgroup): see the pytest "
                "pin in pyproject.toml"
            )


def pytest_configure(config):
    # Known test secrets. A fresh clone's data/ was not made by the simulator, so the platform
    # refuses the demo stand-ins there (batch_platform.demo_mode), and tests compute masked
    # values with a key they know.
    os.environ.setdefault("BATCH_PLATFORM_PII_SALT", "test-salt-not-secret")
    os.environ.setdefault("BATCH_PLATFORM_API_TOKEN", API_TOKEN)
    # The daemons, webservers and runs the tests start take what `make` gives every process.
    adopt_platform_environment()


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


@pytest.fixture(scope="session")
def dagster_postgres_database() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for Dagster's instance storage, dropped after the session.

    Yields the DAGSTER_PG_* variables deploy/dagster.production.yaml reads
    (benchmarks/postgres_storage.py). Skips when no server answers; fails when CI=true.
    """
    with scratch(fresh_database()) as storage:
        yield storage
