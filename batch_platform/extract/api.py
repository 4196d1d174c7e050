"""The api access method: a service's paginated REST endpoint, read one partition window at a time.

A day is fetched as `GET <base url><path>?updated_since=<day 00:00>&updated_before=<next day
00:00>&page=<n>&page_size=<k>` with a bearer token, following `next_page` until it is null.
Asking for exactly the partition window (rather than "everything since the last watermark")
makes a re-run of any day idempotent: it reads the same rows and replaces the same file.

Faults are split by what waiting can fix. Timeouts, refused or dropped connections, 429 and 5xx
are transient: the page is retried with exponential backoff and jitter (stamina), honouring a
429's Retry-After up to a cap. Any other status (401, 400, 404, ...) and a well-formed but wrong
envelope are permanent: they fail at once, as a `dg.Failure` that also bypasses Dagster's retry
policy, since a bad token or URL is not fixed by asking again. A page is decoded and checked as
a whole before any of its records is staged, and the partition file is only replaced after the
last page, so a failure at any point leaves the previous partition file as it was.

The token goes into the Authorization header and nowhere else: messages name the variable it
came from, and any echo of it in a response body is masked before it is quoted. Without a token
variable the demo token is sent, but only in the demo (`batch_platform.demo_mode`): anywhere
else the extract is refused before any request, naming the variables to set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import stamina

from batch_platform.demo_mode import SettingsError
from batch_platform.extract.events import (
    fail_on_missing_required_columns,
    present_fields,
    unknown_fields,
)
from batch_platform.extract.lake import PartitionLoad, PartitionStats, day_window
from batch_platform.paths import lake_dir
from batch_platform.registry import SourceSpec
from batch_platform.settings import PlatformSettings


@dataclass(frozen=True)
class ApiSettings:
    """How patiently to talk to an API. Tests shrink these; production keeps the defaults.

    `timeout` applies to each phase of a request (connect, write, each read); `attempts` counts
    every try of one page, the first included. Backoff between tries is
    min(wait_max, wait_initial * 2^(try-1) + random(0, wait_jitter)); a 429 waits its
    Retry-After instead, at most `retry_after_max` seconds.
    """

    timeout: float = 10.0
    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 0.5
    retry_after_max: float = 30.0
    page_size: int = 500


DEFAULT_SETTINGS = ApiSettings()


class ApiRejected(dg.Failure):
    """A fault asking again cannot fix (bad token or URL, bad request, unexpected envelope)."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


class ApiUnavailable(RuntimeError):
    """A transient fault outlasted the retries (a page's attempts ran out, or the data moved
    while paging); Dagster's retry policy runs the whole extract again later."""


class _TransientResponse(Exception):
    """A response worth retrying (429, 5xx, a body cut short); `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,  # connect, read (incl. a reset mid-body), write, close
    httpx.RemoteProtocolError,  # the server closed the connection before the body was complete
    _TransientResponse,
)


@dataclass(frozen=True)
class _Endpoint:
    source: str  # service/entity, for messages
    url: str
    shown_url: str  # the URL without any user:password part, safe to print
    token: str
    token_origin: str  # the variable the token came from (or "the demo default")


def _endpoint(spec: SourceSpec) -> _Endpoint:
    options = spec.options
    base = os.environ.get(options["base_url_env"]) or options.get("base_url_default", "")
    if not base:
        raise ApiRejected(
            f"{spec.path}: no API base URL; set ${options['base_url_env']} "
            "(the registry declares no base_url_default)"
        )
    url = base.rstrip("/") + options["path"]
    try:
        shown = str(httpx.URL(url).copy_with(username=None, password=None))
    except httpx.InvalidURL as error:
        raise ApiRejected(
            f"{spec.path}: invalid API URL from ${options['base_url_env']}: {error}"
        ) from None
    try:
        token, origin = PlatformSettings.from_environment([spec]).api_token(spec)
    except SettingsError as error:
        raise ApiRejected(f"{spec.path}: {error}") from None
    return _Endpoint(spec.path, url, shown, token, origin)


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    """Seconds a Retry-After asks for (delta-seconds or an HTTP date), capped; None if absent."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


def _backoff_hook(settings: ApiSettings) -> Callable[[Exception], bool | float]:
    """stamina's `on=`: False stops, True uses the exponential backoff, a number overrides it."""

    def hook(error: Exception) -> bool | float:
        if isinstance(error, _TransientResponse) and error.retry_after is not None:
            return error.retry_after
        return isinstance(error, _TRANSIENT_ERRORS)

    return hook


def _excerpt(response: httpx.Response, endpoint: _Endpoint) -> str:
    """The start of an error body, on one line, with any echo of the token masked."""
    return " ".join(response.text[:200].split()).replace(endpoint.token, "***")


@dataclass(frozen=True)
class _Page:
    records: list[Any]
    next_page: int | None
    total: int | None
    size: int  # bytes of the response body


def _parse_page(response: httpx.Response, page: int, where: str) -> _Page:
    """Decode and check the whole envelope; only a page that passes is staged at all."""
    try:
        body = json.loads(response.content)
    except ValueError as error:
        # A 200 whose body is not JSON is most likely cut short on the way: worth another try.
        raise _TransientResponse(f"response body is not valid JSON ({error})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiRejected(f"{where}: expected a JSON object with a 'data' list, got {type(body)}")
    next_page = body.get("next_page")
    if next_page is not None and (
        not isinstance(next_page, int) or next_page <= page or not body["data"]
    ):
        # Guards against a server that would keep us paging forever.
        raise ApiRejected(
            f"{where}: next_page must be null or a later page after a non-empty page, "
            f"got {next_page!r} after {len(body['data'])} records"
        )
    total = body.get("total")
    return _Page(
        body["data"], next_page, total if isinstance(total, int) else None, len(response.content)
    )


def _fetch_page(
    client: httpx.Client,
    endpoint: _Endpoint,
    window: tuple[datetime, datetime],
    page: int,
    settings: ApiSettings,
) -> _Page:
    """One page, retried on transient faults; raises ApiRejected or ApiUnavailable otherwise."""
    params = {
        "updated_since": window[0].isoformat(),
        "updated_before": window[1].isoformat(),
        "page": page,
        "page_size": settings.page_size,
    }
    where = f"{endpoint.source}: GET {endpoint.shown_url} page {page}"
    try:
        for attempt in stamina.retry_context(
            on=_backoff_hook(settings),
            attempts=settings.attempts,
            timeout=None,  # bounded by attempts and the per-request timeout instead
            wait_initial=settings.wait_initial,
            wait_max=settings.wait_max,
            wait_jitter=settings.wait_jitter,
        ):
            with attempt:
                response = client.get(endpoint.url, params=params)
                status = response.status_code
                if status == 429 or status >= 500:
                    raise _TransientResponse(
                        f"HTTP {status} {response.reason_phrase}",
                        _retry_after(response, settings.retry_after_max) if status == 429 else None,
                    )
                if status == 401 or status == 403:
                    raise ApiRejected(
                        f"{where}: HTTP {status} {response.reason_phrase}, not retried; the API "
                        f"refused the token from {endpoint.token_origin}"
                    )
                if status != 200:
                    raise ApiRejected(
                        f"{where}: HTTP {status} {response.reason_phrase}, not retried: "
                        f"{_excerpt(response, endpoint)}"
                    )
                return _parse_page(response, page, where)
    except _TRANSIENT_ERRORS as error:
        last = str(error) if isinstance(error, _TransientResponse) else repr(error)
        raise ApiUnavailable(
            f"{where}: gave up after {settings.attempts} attempts; last error: {last}"
        ) from None
    except httpx.HTTPError as error:
        # Not transient: an unsupported scheme, a malformed URL, a proxy refusing us.
        raise ApiRejected(f"{where}: {error!r}, not retried") from None
    raise AssertionError("unreachable: stamina either returns, re-raises or retries")


def _stage(load: PartitionLoad, page_number: int, records: list[Any]) -> None:
    """One INSERT per page; `position` is the record's index in the page's `data` list."""
    load.con.execute(
        "INSERT INTO input SELECT $origin, generate_subscripts($raws, 1) - 1, unnest($raws)",
        {
            "origin": f"page {page_number}",
            "raws": [json.dumps(r, ensure_ascii=False) for r in records],
        },
    )


def _pages(
    client: httpx.Client, endpoint: _Endpoint, window: tuple[datetime, datetime], settings
) -> Iterator[tuple[int, _Page]]:
    """Every page of the window, in order, each fetched whole (with retries) before it is given."""
    page_number: int | None = 1
    while page_number is not None:
        page = _fetch_page(client, endpoint, window, page_number, settings)
        yield page_number, page
        page_number = page.next_page


def changed_days(
    spec: SourceSpec, since: str | None, settings: ApiSettings = DEFAULT_SETTINGS
) -> dict[str, str]:
    """Days holding records with a watermark newer than `since`, with the newest per day.

    What the watermark sensor polls: `updated_since` from the last watermark seen, up to far
    in the future. The API's `updated_since` is inclusive, so records equal to `since` are
    dropped here.
    """
    endpoint = _endpoint(spec)
    start = datetime.fromisoformat(since) if since else datetime(1970, 1, 1)
    window = (start, datetime(9999, 1, 1))
    headers = {"Authorization": f"Bearer {endpoint.token}", "Accept": "application/json"}
    newest: dict[str, str] = {}
    with httpx.Client(headers=headers, timeout=settings.timeout) as client:
        for _, page in _pages(client, endpoint, window, settings):
            for record in page.records:
                mark = record.get(spec.watermark) if isinstance(record, dict) else None
                if not isinstance(mark, str) or (since and mark <= since):
                    continue
                day = mark[:10]
                newest[day] = max(newest.get(day, mark), mark)
    return newest


def extract_api(
    spec: SourceSpec, day: date, data_dir: Path, settings: ApiSettings = DEFAULT_SETTINGS
) -> PartitionStats:
    """Fetch a day's window page by page, check every record, replace the lake partition."""
    endpoint = _endpoint(spec)
    window = day_window(day)
    stats = PartitionStats()
    headers = {"Authorization": f"Bearer {endpoint.token}", "Accept": "application/json"}
    with (
        httpx.Client(headers=headers, timeout=settings.timeout) as client,
        PartitionLoad(spec, day, lake_dir(data_dir), "json", "raw VARCHAR") as load,
    ):
        staged, total = 0, None
        for page_number, page in _pages(client, endpoint, window, settings):
            _stage(load, page_number, page.records)
            stats.input_files += 1
            stats.bytes_read += page.size
            staged += len(page.records)
            total = page.total if page.total is not None else total
        if total is not None and total != staged:
            # Offset paging over data that changed under us skips or repeats records.
            raise ApiUnavailable(
                f"{spec.path}: the API reported {total} records for {day.isoformat()} but "
                f"{staged} arrived over {stats.input_files} pages; the data changed while paging"
            )
        present = present_fields(load)
        stats.schema_drift = unknown_fields(present, spec)
        fail_on_missing_required_columns(load, spec, present)
        return load.write(stats)
