"""Helpers shared by the tests: the landscape they use and how to build the pipeline over it."""

import os
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

LANDSCAPE_START = date(2026, 3, 1)
LANDSCAPE_DAYS = 8
LANDSCAPE_SCALE = 0.08
LANDSCAPE_SEED = 11
API_TOKEN = "test-api-token-not-secret"


def landscape_days() -> list[str]:
    return [(LANDSCAPE_START + timedelta(days=i)).isoformat() for i in range(LANDSCAPE_DAYS)]


def expected_counts(truth: dict, day: str) -> tuple[int, int]:
    """(loaded, quarantined) rows the simulator's ground truth says a source's day must give.

    Events carry injected malformed and invalid lines; database and API rows are all valid.
    """
    figures = truth["partitions"][day]
    if truth["access"] == "events":
        return figures["loaded"], figures["malformed"] + figures["invalid"]
    return figures["rows"], 0


def requested_pairs(run_requests) -> list[tuple[str, str]]:
    """Every (asset, day) a list of run requests materialises: a run over a range of days
    extracts each of its assets for each day of the range."""
    pairs = set()
    for request in run_requests:
        tags = request.tags
        if request.partition_key:
            first = last = date.fromisoformat(request.partition_key)
        else:
            first = date.fromisoformat(tags["dagster/asset_partition_range_start"])
            last = date.fromisoformat(tags["dagster/asset_partition_range_end"])
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        for key in request.asset_selection:
            pairs |= {(key.to_user_string(), day.isoformat()) for day in days}
    return sorted(pairs)


def postgres_url() -> str | None:
    """The CI PostgreSQL server, or None (CI=true makes its absence a failure, not a skip)."""
    import adbc_driver_postgresql.dbapi as pg

    url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with pg.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return url
    except Exception as error:  # the driver raises several kinds for "not there"
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {url} is required on CI and unreachable: {error}")
        return None


def materialize_ok(assets, **kwargs) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, raise_on_error=True, **kwargs)
    assert result.success
    return result


@contextmanager
def demo_apis(data: Path):
    """The demo catalog and promotions APIs on a free port, with the env pointing at them."""
    from batch_platform.simulator.api_server import create_app, serve_in_thread

    with (
        serve_in_thread(create_app(data, API_TOKEN)) as base_url,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("CATALOG_API_URL", f"{base_url}/catalog")
        mp.setenv("PROMOTIONS_API_URL", f"{base_url}/promotions")
        mp.setenv("BATCH_PLATFORM_API_TOKEN", API_TOKEN)
        yield base_url


def build_pipeline(data: Path, days: list[str]) -> list[dg.ExecuteInProcessResult]:
    """Extract every source for every day, then everything above the extracts as one range run.

    Returns the dbt runs' results (the partitioned range, then the whole tables).
    """
    from batch_platform.definitions import (
        dbt_partitioned_models,
        dbt_whole_tables,
        defs,
        extracts,
    )

    resources = {"dbt": defs.resources["dbt"]}
    with demo_apis(data):
        for day in days:
            materialize_ok(extracts, partition_key=day)
    everything = [*extracts, dbt_partitioned_models, dbt_whole_tables]
    range_tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    return [
        materialize_ok(
            everything,
            resources=resources,
            tags=tags,
            selection=dg.AssetSelection.assets(step),
        )
        for step, tags in ((dbt_partitioned_models, range_tags), (dbt_whole_tables, None))
    ]


def warehouse(data: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
