"""The api access method against real HTTP: the demo REST service on 127.0.0.1, faults and all.

The landscape is generated once for the module and only read (the API server serves its SQLite
files); every test writes its lake into its own tmp_path, so no test sees another's files.
Retry waits are shrunk through `ApiSettings`, except a 429's Retry-After, which is honoured.
"""

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.extract.api import ApiRejected, ApiSettings, ApiUnavailable, extract_api
from batch_platform.extract.events import MissingColumnError
from batch_platform.extract.factory import ROWS_ACCOUNTED_FOR, build_extract_asset
from batch_platform.extract.lake import partition_path
from batch_platform.paths import DATA_DIR_ENV
from batch_platform.registry import SourceSpec, load_registry
from batch_platform.simulator import simulate
from batch_platform.simulator.api_server import create_app, serve_in_thread

START = date(2026, 3, 1)
DAYS = [START + timedelta(days=n) for n in range(3)]
TOKEN = "t0ken-under-test-4f9c2e"
WRONG_TOKEN = "wr0ng-token-8b1d7a"
FAST = ApiSettings(
    timeout=2.0, attempts=5, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01, page_size=50
)
SOURCES = {
    "catalog/products": ("catalog", "products"),
    "promotions/campaigns": ("promotions", "campaigns"),
}


class CountingApp:
    """Counts the HTTP requests that reach the wrapped app, to tell retries from none."""

    def __init__(self, app: Any) -> None:
        self.app, self.requests = app, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def api_landscape(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("api-landscape") / "data"
    truth = simulate(folder, start=START, days=len(DAYS), seed=5, scale=0.05)
    return folder, truth


@pytest.fixture(scope="module")
def specs() -> dict[str, SourceSpec]:
    return {s.path: s for s in load_registry(load_manifest()) if s.path in SOURCES}


@pytest.fixture
def serve(api_landscape, monkeypatch) -> Iterator[Callable[..., CountingApp]]:
    """Start an API server (the demo app, or any app) and point both sources' env vars at it."""
    monkeypatch.setenv("CATALOG_API_TOKEN", TOKEN)
    monkeypatch.setenv("PROMOTIONS_API_TOKEN", TOKEN)
    monkeypatch.delenv("BATCH_PLATFORM_API_TOKEN", raising=False)
    with ExitStack() as servers:

        def start(app: Any = None, fault_plan=None, stall_seconds: float = 5.0) -> CountingApp:
            if app is None:
                app = create_app(api_landscape[0], TOKEN, fault_plan, stall_seconds=stall_seconds)
            counted = CountingApp(app)
            base = servers.enter_context(serve_in_thread(counted))
            monkeypatch.setenv("CATALOG_API_URL", f"{base}/catalog")
            monkeypatch.setenv("PROMOTIONS_API_URL", f"{base}/promotions")
            return counted

        yield start


def sqlite_keys(data: Path, source: str, day: date) -> list[str]:
    database, table = SOURCES[source]
    key = {"products": "product_id", "campaigns": "promotion_code"}[table]
    with closing(sqlite3.connect(data / "services" / f"{database}.sqlite")) as db:
        query = f"SELECT {key} FROM {table} WHERE substr(updated_at, 1, 10) = ? ORDER BY 1"  # noqa: S608
        return [row[0] for row in db.execute(query, [day.isoformat()])]


def truth_rows(api_landscape, source: str, day: date) -> int:
    """The simulator's ground truth: rows whose current `updated_at` falls on `day`."""
    return api_landscape[1]["sources"][source]["partitions"][day.isoformat()]["rows"]


def lake_rows(lake: Path, spec: SourceSpec, day: date, zone: str = "raw") -> list[dict]:
    return pq.read_table(partition_path(lake, zone, spec, day)).to_pylist()


def test_every_day_of_both_sources_matches_ground_truth_and_reruns_identically(
    api_landscape, specs, serve, tmp_path
):
    data = api_landscape[0]
    serve()
    for source, spec in specs.items():
        for day in DAYS:
            expected = truth_rows(api_landscape, source, day)
            keys = sqlite_keys(data, source, day)
            stats = extract_api(spec, day, tmp_path, FAST)
            assert stats.rows_loaded == stats.rows_read == expected == len(keys), (source, day)
            assert stats.rows_quarantined == stats.rows_duplicate == 0
            assert stats.schema_drift == []
            assert stats.input_files == max(1, -(-expected // FAST.page_size))
            rows = lake_rows(tmp_path / "lake", spec, day)
            assert sorted(r[spec.primary_key] for r in rows) == keys
            if day == START:  # the day every row goes live: the one worth re-running
                extract_api(spec, day, tmp_path, FAST)
                assert lake_rows(tmp_path / "lake", spec, day) == rows


def test_transient_faults_on_any_page_are_retried_without_losing_or_doubling_rows(
    api_landscape, specs, serve, tmp_path, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    spec, day = specs["catalog/products"], DAYS[0]
    expected = truth_rows(api_landscape, spec.path, day)
    server = serve(fault_plan=["429", "ok", "drop", "503", "ok"])  # page 1: 429; page 2: drop, 503
    began = time.monotonic()
    stats = extract_api(spec, day, tmp_path, FAST)
    assert time.monotonic() - began >= 0.9  # the 429's Retry-After: 1 was honoured
    assert stats.rows_read == stats.rows_loaded == expected
    assert stats.rows_duplicate == 0  # the half-sent page 2 staged nothing
    assert server.requests == stats.input_files + 3
    logged = caplog.text + "".join(capsys.readouterr())  # stamina logs through structlog
    assert "retry_scheduled" in logged and TOKEN not in logged


def test_a_stalled_response_times_out_and_is_retried(api_landscape, specs, serve, tmp_path):
    spec, day = specs["promotions/campaigns"], DAYS[0]
    server = serve(fault_plan=["timeout"], stall_seconds=1.0)
    began = time.monotonic()
    stats = extract_api(spec, day, tmp_path, replace(FAST, timeout=0.3))
    assert time.monotonic() - began < 0.9  # did not wait for the stalled answer
    assert stats.rows_loaded == truth_rows(api_landscape, spec.path, day)
    assert server.requests == 2


def test_running_out_of_attempts_fails_cleanly_and_keeps_the_old_partition(specs, serve, tmp_path):
    spec, day = specs["catalog/products"], DAYS[0]
    serve()
    extract_api(spec, day, tmp_path, FAST)
    files = [partition_path(tmp_path / "lake", zone, spec, day) for zone in ("raw", "quarantine")]
    before = [f.read_bytes() for f in files]

    settings = ApiSettings(timeout=2.0, attempts=3, wait_initial=0.01, page_size=50)
    server = serve(fault_plan=["ok", "503", "503", "503"])
    with pytest.raises(ApiUnavailable) as failure:
        extract_api(spec, day, tmp_path, settings)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("catalog/products: GET http://127.0.0.1:")
    assert "page 2: gave up after 3 attempts; last error: HTTP 503" in message
    assert TOKEN not in message
    assert server.requests == 1 + 3
    assert [f.read_bytes() for f in files] == before


def test_a_wrong_token_fails_at_once_without_retries_or_leaking_it(
    specs, serve, tmp_path, monkeypatch, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    server = serve()
    monkeypatch.setenv("CATALOG_API_TOKEN", WRONG_TOKEN)
    with pytest.raises(ApiRejected) as failure:
        extract_api(specs["catalog/products"], DAYS[0], tmp_path, ApiSettings(wait_initial=1.0))
    message = str(failure.value)
    assert "catalog/products" in message and "HTTP 401" in message
    assert "$CATALOG_API_TOKEN" in message
    assert failure.value.allow_retries is False  # Dagster's retry policy must not retry it either
    assert server.requests == 1
    logged = message + caplog.text + "".join(capsys.readouterr())
    assert WRONG_TOKEN not in logged and TOKEN not in logged
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("base_url", "default", "complaint"),
    [
        ("ftp://127.0.0.1/catalog", "", "UnsupportedProtocol"),
        ("", "", r"no API base URL; set \$CATALOG_API_URL"),
    ],
)
def test_a_misconfigured_endpoint_fails_at_once_naming_the_source(
    specs, tmp_path, monkeypatch, base_url, default, complaint
):
    monkeypatch.setenv("CATALOG_API_URL", base_url)
    spec = specs["catalog/products"]
    spec = replace(spec, options={**spec.options, "base_url_default": default})
    with pytest.raises(ApiRejected, match=f"^catalog/products: .*{complaint}"):
        extract_api(spec, DAYS[0], tmp_path, FAST)


def _fixed_pages(pages: list[Any]) -> Starlette:
    """An API answering page n with pages[n-1] verbatim, for responses the demo never sends."""

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse(pages[int(request.query_params["page"]) - 1])

    return Starlette(routes=[Route("/catalog/products", answer)])


def _product(number: int, **changes: Any) -> dict[str, Any]:
    record = {
        "product_id": f"prd-{number:04d}",
        "sku": f"SKU-{number:04d}",
        "name": f"Product {number}",
        "category": "books",
        "unit_price": 9.99,
        "updated_at": f"2026-03-01T10:00:{number:02d}",
    }
    return {k: v for k, v in {**record, **changes}.items() if v is not None}


def test_drift_is_reported_and_bad_records_quarantined_by_page_and_index(specs, serve, tmp_path):
    spec, day = specs["catalog/products"], DAYS[0]
    pages = [
        {"data": [_product(1, colour="red"), _product(2)], "total": 4, "next_page": 2},
        {"data": [_product(3, unit_price=-1), "not an object"], "total": 4, "next_page": None},
    ]
    serve(_fixed_pages(pages))
    stats = extract_api(spec, day, tmp_path, FAST)
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (4, 2, 2)
    assert stats.schema_drift == ["colour"]
    assert stats.input_files == 2
    quarantined = lake_rows(tmp_path / "lake", spec, day, "quarantine")
    assert [(r["origin"], r["position"]) for r in quarantined] == [("page 2", 0), ("page 2", 1)]


def test_a_required_column_missing_from_every_record_fails_the_extract(specs, serve, tmp_path):
    serve(_fixed_pages([{"data": [_product(1, sku=None), _product(2, sku=None)]}]))
    with pytest.raises(MissingColumnError, match="sku"):
        extract_api(specs["catalog/products"], DAYS[0], tmp_path, FAST)
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([_product(1)], "expected a JSON object with a 'data' list"),
        ({"data": {"product_id": "prd-0001"}}, "expected a JSON object with a 'data' list"),
        ({"data": [_product(1)], "next_page": 1}, "next_page must be null or a later page"),
        ({"data": [], "next_page": 2}, "next_page must be null or a later page"),
    ],
)
def test_an_unexpected_envelope_is_rejected_at_once(specs, serve, tmp_path, body, complaint):
    server = serve(_fixed_pages([body]))
    with pytest.raises(ApiRejected, match=complaint):
        extract_api(specs["catalog/products"], DAYS[0], tmp_path, FAST)
    assert server.requests == 1


def test_records_lost_between_pages_fail_instead_of_loading_a_short_day(specs, serve, tmp_path):
    serve(_fixed_pages([{"data": [_product(1)], "total": 2, "next_page": None}]))
    with pytest.raises(ApiUnavailable, match="reported 2 records .* but 1 arrived"):
        extract_api(specs["catalog/products"], DAYS[0], tmp_path, FAST)


def test_dagster_materialises_an_api_extract_with_its_accounting_check(
    api_landscape, specs, serve, tmp_path, monkeypatch
):
    serve()
    # The shared token variable is the fallback when the source's own is unset.
    monkeypatch.delenv("PROMOTIONS_API_TOKEN")
    monkeypatch.setenv("BATCH_PLATFORM_API_TOKEN", TOKEN)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    spec = specs["promotions/campaigns"]
    result = dg.materialize(
        [build_extract_asset(spec, platform_days)], partition_key=START.isoformat()
    )
    assert result.success
    [materialization] = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    expected = truth_rows(api_landscape, spec.path, START)
    assert metadata["rows_loaded"].value == expected > 0
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == ROWS_ACCOUNTED_FOR and check.passed
    assert TOKEN not in json.dumps([str(event) for event in result.all_events])
