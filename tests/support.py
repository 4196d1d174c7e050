"""Helpers shared by the tests: the landscape they use and how to build the pipeline over it."""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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


def run_dbt(data: Path, command: str, *args: str) -> None:
    """dbt as someone who only knows dbt runs it, from the project folder, against `data`'s
    lake and warehouse, with its artifacts kept under `data` so the project's own target/ (the
    manifest Dagster reads) is not rewritten."""
    import subprocess

    from batch_platform.dbt_project import DBT_EXECUTABLE
    from batch_platform.paths import DATA_DIR_ENV, DBT_PROJECT_DIR

    env = {key: value for key, value in os.environ.items() if not key.startswith("DBT_")}
    env[DATA_DIR_ENV] = str(data)
    env.setdefault("BATCH_PLATFORM_PII_SALT", "test-salt-not-secret")
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [DBT_EXECUTABLE, command, "--target-path", str(data / "target")]
        + ["--log-path", str(data / "logs"), *args],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


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


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder` with its size and modification time ({} when
    `folder` does not exist): compare two calls to see whether anything was written there."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): (status.st_size, status.st_mtime_ns)
        for path in folder.rglob("*")
        for status in [path.stat()]
    }


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


def build_pipeline(
    data: Path, days: list[str], failing_checks: frozenset[str] = frozenset()
) -> list[dg.ExecuteInProcessResult]:
    """Extract every source for every day, then everything above the extracts as one range run.

    Returns the dbt runs' results (the partitioned range, then the whole tables).
    `failing_checks` names the dbt tests (asset checks) that are expected to fail with error
    severity (e.g. the break-rate threshold on a landscape full of late events): dbt then exits
    non-zero and the run fails after building every model, and anything else failing is still
    an error here.
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
    results = []
    for step, tags in ((dbt_partitioned_models, range_tags), (dbt_whole_tables, None)):
        result = dg.materialize(
            everything,
            resources=resources,
            tags=tags,
            selection=dg.AssetSelection.assets(step),
            raise_on_error=not failing_checks,
        )
        failed = {
            check.check_name
            for check in result.get_asset_check_evaluations()
            if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        }
        assert failed <= failing_checks, f"unexpected failing checks: {sorted(failed)}"
        assert result.success or failed, "a dbt step failed without a failing check"
        results.append(result)
    return results


def warehouse(data: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)


BREAK_KINDS = (
    "paid_without_capture",
    "amount_mismatch",
    "shipment_for_unpaid_or_cancelled",
    "movement_without_order",
)


def assert_reconciliation_is_the_ground_truth(data: Path, truth: dict) -> None:
    """Every break the simulator's ground truth lists, with its kind and day, and no other; and
    the daily summary counts exactly those breaks against the orders the orders service reported.
    """
    with warehouse(data) as con:
        rows = con.execute(
            "SELECT break_type, coalesce(movement_id, order_id), break_date "
            "FROM consistency.reconciliation_breaks"
        ).fetchall()
        summary = con.execute(
            "SELECT summary_date, orders_checked, paid_without_capture, amount_mismatch, "
            "shipment_for_unpaid_or_cancelled, movement_without_order, breaks, break_rate "
            "FROM consistency.reconciliation_daily_summary"
        ).fetchall()
    found = sorted((kind, key, day.isoformat()) for kind, key, day in rows)
    expected = sorted(
        (kind, key, day)
        for kind, days in truth["business_fault_days"].items()
        for key, day in days.items()
    )
    missed = sorted(set(expected) - set(found))
    false = sorted(set(found) - set(expected))
    assert (missed, false) == ([], []), f"missed: {missed}; false or on the wrong day: {false}"
    assert found == expected, "a break was reported twice"

    per_day: dict[str, dict[str, int]] = {}
    for kind, _, day in expected:
        per_day.setdefault(day, dict.fromkeys(BREAK_KINDS, 0))[kind] += 1
    expected_summary = {}
    for day in sorted(set(per_day) | {d for d, f in truth["orders"].items() if f["orders"]}):
        orders = truth["orders"].get(day, {"orders": 0})["orders"]
        kinds = per_day.get(day, dict.fromkeys(BREAK_KINDS, 0))
        breaks = sum(kinds.values())
        rate = None if orders == 0 else breaks / orders
        expected_summary[day] = (orders, *(kinds[k] for k in BREAK_KINDS), breaks, rate)
    assert {day.isoformat(): tuple(rest) for day, *rest in summary} == expected_summary


def assert_orders_are_the_ground_truth(data: Path, truth: dict) -> None:
    """Per order day: the orders, those still waiting for `order_placed`, their lines, units
    ordered and shipped in `fct_orders`, and the same lines in `fct_order_items`."""
    with warehouse(data) as con:
        orders = con.execute(
            "SELECT order_date, count(*), count(*) FILTER (WHERE NOT placement_known), "
            "sum(line_count), sum(units_ordered), sum(units_shipped) "
            "FROM middle_platform.fct_orders GROUP BY order_date"
        ).fetchall()
        items = con.execute(
            "SELECT order_date, count(*), sum(quantity) "
            "FROM middle_platform.fct_order_items GROUP BY order_date"
        ).fetchall()
    fields = ("orders", "placement_unknown", "line_count", "units_ordered", "units_shipped")
    expected = {day: figures for day, figures in truth["orders"].items() if figures["orders"]}
    assert {day.isoformat(): dict(zip(fields, rest, strict=True)) for day, *rest in orders} == (
        expected
    )
    assert {day.isoformat(): (lines, units) for day, lines, units in items} == {
        day: (figures["line_count"], figures["units_ordered"]) for day, figures in expected.items()
    }


@dataclass(frozen=True)
class LandedFacts:
    """What the delivered event files hold, to show a landscape exercises a case at all."""

    ordered: frozenset[str]  # orders with at least one valid order event
    delivered_only: frozenset[str]  # shipments with a valid delivery and no valid dispatch


def landed_facts(data: Path) -> LandedFacts:
    from batch_platform.simulator.contract import ORDERS, SHIPMENTS, classify

    ordered, dispatched, delivered = set(), set(), set()
    for source in (ORDERS, SHIPMENTS):
        for path in sorted((data / "landing" / source).rglob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                verdict, event = classify(source, line)
                if verdict != "valid":
                    continue
                if source == ORDERS:
                    ordered.add(event["order_id"])
                elif event["event_type"] == "shipment_dispatched":
                    dispatched.add(event["shipment_id"])
                else:
                    delivered.add(event["shipment_id"])
    return LandedFacts(frozenset(ordered), frozenset(delivered - dispatched))


@contextmanager
def scratch(service) -> Iterator:
    """Enter a scratch service of benchmarks/ (`fresh_database`, `fresh_vhost`): the test is
    skipped when its server is not there, and fails on CI, where every server must be."""
    from benchmarks.postgres_storage import PostgresUnavailable
    from benchmarks.scratch_broker import BrokerUnavailable

    with ExitStack() as stack:
        try:
            value = stack.enter_context(service)
        except (PostgresUnavailable, BrokerUnavailable) as error:
            if os.environ.get("CI") == "true":
                pytest.fail(str(error))
            pytest.skip(str(error))
        yield value
