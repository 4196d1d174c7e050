"""The catalog and promotions APIs on a real uvicorn server: auth, paging, filters, faults."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from batch_platform.simulator import simulate
from batch_platform.simulator.api_server import create_app, serve_in_thread

TOKEN = "test-token"
START = date(2026, 3, 1)
DAYS = 4
CLI = Path(sys.executable).with_name("batch-platform")


@pytest.fixture(scope="module")
def api_landscape(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("api") / "data"
    return folder, simulate(folder, START, DAYS, scale=0.02)


@pytest.fixture(scope="module")
def api(api_landscape):
    """A client for a fault-free server over the module's landscape."""
    folder, _ = api_landscape
    with serve_in_thread(create_app(folder, TOKEN)) as base_url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
            yield client


def fetch_all(client: httpx.Client, path: str, **params) -> list[dict]:
    rows, page = [], 1
    while page is not None:
        response = client.get(path, params={**params, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["page"] == page and len(body["data"]) <= body["page_size"]
        rows += body["data"]
        page = body["next_page"]
    assert len(rows) == body["total"]
    return rows


def test_requests_without_the_token_are_refused(api_landscape, api):
    base_url = str(api.base_url)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(f"{base_url}/catalog/products", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "missing or invalid bearer token"}
        assert TOKEN not in response.text


def test_paging_returns_every_row_once_in_a_stable_order(api_landscape, api):
    folder, _ = api_landscape
    rows = fetch_all(api, "/catalog/products", page_size=7)
    with closing(sqlite3.connect(folder / "services" / "catalog.sqlite")) as db:
        expected = db.execute(
            "SELECT product_id, unit_price, updated_at FROM products "
            "ORDER BY updated_at, product_id"
        ).fetchall()
    assert [
        (r["product_id"], r["unit_price"], r["updated_at"].replace("T", " ")) for r in rows
    ] == [tuple(row) for row in expected]
    assert set(rows[0]) == {"product_id", "sku", "name", "category", "unit_price", "updated_at"}
    campaigns = fetch_all(api, "/promotions/campaigns", page_size=1000)
    assert len(campaigns) == 10 and campaigns[0]["discount_pct"] > 0
    last = api.get("/catalog/products", params={"page": 99}).json()
    assert last["data"] == [] and last["next_page"] is None and last["total"] == 200


@pytest.mark.parametrize("path", ["/catalog/products", "/promotions/campaigns"])
def test_updated_since_and_before_select_one_day(api_landscape, api, path):
    _, manifest = api_landscape
    source = path.strip("/")
    for n in range(DAYS):
        day, next_day = START + timedelta(days=n), START + timedelta(days=n + 1)
        rows = fetch_all(
            api,
            path,
            updated_since=f"{day.isoformat()}T00:00:00",
            updated_before=next_day.isoformat(),
            page_size=50,
        )
        assert len(rows) == manifest["sources"][source]["partitions"][day.isoformat()]["rows"]
        assert all(r["updated_at"].startswith(day.isoformat()) for r in rows)
    newest = fetch_all(api, path)[-1]["updated_at"]
    inclusive = fetch_all(api, path, updated_since=newest)
    assert inclusive[0]["updated_at"] == newest
    assert fetch_all(api, path, updated_before=fetch_all(api, path)[0]["updated_at"]) == []


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "x"},
        {"page_size": "1001"},
        {"updated_since": "yesterday"},
        {"updated_before": "2026-13-01"},
        {"since": "2026-03-01"},
    ],
)
def test_bad_query_parameters_get_a_400(api, params):
    response = api.get("/catalog/products", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "\n" not in error and error


def test_unknown_paths_answer_in_json(api):
    response = api.get("/catalog/unknown")
    assert response.status_code == 404 and "error" in response.json()


def test_the_fault_plan_plays_out_then_all_is_ok(api_landscape):
    folder, _ = api_landscape
    app = create_app(folder, TOKEN, ["429", "503", "ok", "drop", "timeout"], stall_seconds=2)
    with serve_in_thread(app) as base_url:
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"})
        limited = client.get("/catalog/products")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert client.get("/catalog/products").status_code == 503
        assert client.get("/catalog/products").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/catalog/products")
        with pytest.raises(httpx.ReadTimeout):
            client.get("/catalog/products", timeout=0.3)
        for _ in range(3):
            assert client.get("/promotions/campaigns").status_code == 200
        client.close()


def test_the_api_never_writes_its_databases(api_landscape, api):
    folder, _ = api_landscape
    databases = sorted((folder / "services").glob("*.sqlite"))
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in databases]
    fetch_all(api, "/catalog/products", page_size=13)
    fetch_all(api, "/promotions/campaigns")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in databases] == before
    assert sorted(p.name for p in (folder / "services").iterdir()) == [p.name for p in databases]


def test_create_app_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="token"):
        create_app(tmp_path, "")
    with pytest.raises(ValueError, match="unknown fault 'teapot'"):
        create_app(tmp_path, TOKEN, ["429", "teapot"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault-plan", "429,teapot"], "error: --fault-plan has an unknown fault 'teapot'"),
        (["--port", "99999"], "error: --port must be a TCP port from 1 to 65535, got 99999"),
        ([], "error: --data-dir"),
    ],
)
def test_serve_apis_refuses_bad_input(tmp_path, args, message):
    result = subprocess.run(
        [str(CLI), "serve-apis", "--data-dir", str(tmp_path / "none"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
