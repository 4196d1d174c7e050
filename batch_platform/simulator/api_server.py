"""The catalog and promotions services' REST APIs, served from their SQLite databases.

`GET /catalog/products` and `GET /promotions/campaigns` return current rows, filtered by
`updated_since` (inclusive) and `updated_before` (exclusive), ordered by (updated_at, key) so
that paging is stable, behind a bearer token. A *fault plan* lets tests and demos make the
server misbehave the way real APIs do (rate limits, outages, stalls, dropped connections), one
planned fault per request, so the platform's retries can be exercised for real.

The databases are opened read-only per request: the API never writes, and a simulate --append
running next to it is seen at the next request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from batch_platform import paths
from batch_platform.simulator.databases import database_path, read_only

TOKEN_ENV = "BATCH_PLATFORM_API_TOKEN"
DEFAULT_TOKEN = "demo-token"
FAULTS = ("ok", "429", "503", "timeout", "drop")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_PARAMETERS = {"updated_since", "updated_before", "page", "page_size"}


class _Endpoint:
    """One table behind one route: fixed identifiers, never taken from the request."""

    def __init__(self, database: str, table: str, key: str, columns: tuple[str, ...]) -> None:
        self.database, self.table, self.key, self.columns = database, table, key, columns

    def query(self, services: Path, since: str | None, before: str | None, page: int, size: int):
        conditions, values = [], []
        if since is not None:
            conditions.append("updated_at >= ?")
            values.append(since)
        if before is not None:
            conditions.append("updated_at < ?")
            values.append(before)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        # Identifiers come from the fixed _ENDPOINTS table; every value is a bound parameter.
        rows_sql = (
            f"SELECT {', '.join(self.columns)} FROM {self.table} {where} "  # noqa: S608
            f"ORDER BY updated_at, {self.key} LIMIT ? OFFSET ?"
        )
        count_sql = f"SELECT count(*) FROM {self.table} {where}"  # noqa: S608
        with closing(read_only(database_path(services, self.database))) as db:
            total = db.execute(count_sql, values).fetchone()[0]
            rows = db.execute(rows_sql, [*values, size, (page - 1) * size]).fetchall()
        data = []
        for row in rows:
            record = dict(zip(self.columns, row, strict=True))
            record["updated_at"] = record["updated_at"].replace(" ", "T")
            data.append(record)
        more = page * size < total
        return {
            "data": data,
            "page": page,
            "page_size": size,
            "total": total,
            "next_page": page + 1 if more else None,
        }


_ENDPOINTS = {
    "/catalog/products": _Endpoint(
        "catalog",
        "products",
        "product_id",
        ("product_id", "sku", "name", "category", "unit_price", "updated_at"),
    ),
    "/promotions/campaigns": _Endpoint(
        "promotions",
        "campaigns",
        "promotion_code",
        ("promotion_code", "campaign_name", "discount_pct", "starts_on", "ends_on", "updated_at"),
    ),
}


def parse_fault_plan(text: str) -> list[str]:
    """`429,503,ok` -> ["429", "503", "ok"]; an unknown step raises ValueError naming it."""
    steps = [step.strip() for step in text.split(",") if step.strip()]
    unknown = [step for step in steps if step not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; expected a list of {', '.join(FAULTS)}")
    return steps


class FaultPlan:
    """Planned faults, consumed one per request by concurrent handlers; then every request is ok."""

    def __init__(self, steps: Iterable[str]) -> None:
        steps = list(steps)
        parse_fault_plan(",".join(steps))
        self._steps = deque(steps)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return self._steps.popleft() if self._steps else "ok"


class _BadRequest(ValueError):
    pass


def _timestamp(name: str, value: str | None) -> str | None:
    """An ISO timestamp (date, naive UTC or with offset) as the databases' sortable text."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an ISO timestamp like 2026-03-01T00:00:00") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


def _whole(name: str, value: str | None, default: int, highest: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= highest:
        raise _BadRequest(f"{name} must be a whole number from 1 to {highest}, got {value!r}")
    return int(value)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _DroppedResponse(Response):
    """Sends the headers and half the body, then ends: the server closes the connection."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(content=json.dumps(payload), media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})


def create_app(
    data_dir: Path,
    token: str,
    fault_plan: Iterable[str] | None = None,
    stall_seconds: float = 5.0,
) -> Starlette:
    """The API app over `data_dir/services`. `stall_seconds` is how long a `timeout` waits."""
    if not token:
        raise ValueError("the API token must not be empty")
    services = paths.services_dir(Path(data_dir))
    plan = FaultPlan(fault_plan or ())
    expected = f"Bearer {token}".encode()

    async def serve(request: Request) -> Response:
        fault = plan.next()
        if fault == "429":
            return _error(429, "rate limit exceeded, retry later", {"Retry-After": "1"})
        if fault == "503":
            return _error(503, "service temporarily unavailable")
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, expected):
            headers = {"WWW-Authenticate": "Bearer"}
            return _error(401, "missing or invalid bearer token", headers)
        endpoint = _ENDPOINTS[request.url.path]
        params = request.query_params
        try:
            unknown = sorted(set(params) - _PARAMETERS)
            if unknown:
                raise _BadRequest(f"unknown query parameter {unknown[0]!r}")
            since = _timestamp("updated_since", params.get("updated_since"))
            before = _timestamp("updated_before", params.get("updated_before"))
            page = _whole("page", params.get("page"), 1, 10**9)
            size = _whole("page_size", params.get("page_size"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        except _BadRequest as error:
            return _error(400, str(error))
        if not database_path(services, endpoint.database).is_file():
            return _error(500, f"the {endpoint.database} database is missing; run simulate")
        if fault == "timeout":
            await asyncio.sleep(stall_seconds)
        try:
            payload = await run_in_threadpool(endpoint.query, services, since, before, page, size)
        except sqlite3.Error as error:
            return _error(503, f"the {endpoint.database} database is busy: {error}")
        if fault == "drop":
            return _DroppedResponse(payload)
        return JSONResponse(payload)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Unknown paths and methods answer in JSON too, like every other error."""
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    routes = [Route(path, serve, methods=["GET"]) for path in _ENDPOINTS]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` on a real uvicorn server on a free port in a thread; yields the base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            listener.close()
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
