"""Helpers for the browser tests: real Dagster processes, GraphQL, and Debian's Chromium.

Every process starts in its own process group and is torn down with its whole group (the
webserver and the daemon each spawn a code server, the daemon also spawns run workers), so
nothing outlives the test module, even when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKSPACE = ["-w", str(PROJECT_ROOT / "workspace.yaml")]
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, driven by Playwright (`playwright install` cannot download browsers here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {self.log} ---\n" + "\n".join(text)


class ProcessGroups:
    """Starts commands from the project root, each in a new process group; stops them all."""

    def __init__(self) -> None:
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> Process:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            popen = subprocess.Popen(  # noqa: S603 - fixed argument lists built by the tests
                args,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def start_webserver(self, env: dict[str, str], log: Path, *options: str) -> tuple[str, Process]:
        """`dagster-webserver` over the project's workspace on a free loopback port, with any
        further command-line `options` (e.g. `--read-only`); returns its URL and process once
        it answers."""
        url = f"http://127.0.0.1:{free_port()}"
        port = url.rsplit(":", 1)[1]
        command = [
            str(BIN / "dagster-webserver"),
            *("-h", "127.0.0.1", "-p", port),
            *WORKSPACE,
            *options,
        ]
        webserver = self.start("dagster-webserver", command, env, log)
        wait_until(lambda: http_ok(f"{url}/server_info"), 180, "/server_info", (webserver,))
        return url, webserver

    def stop_all(self, grace_seconds: float = 20) -> None:
        """SIGTERM every group at once, wait for the leaders, then SIGKILL what is left."""
        for process in self.started:
            _signal_group(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for process in self.started:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.started:  # children (code servers, run workers) may outlive leaders
            _signal_group(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def process_groups() -> Iterator[ProcessGroups]:
    groups = ProcessGroups()
    try:
        yield groups
    finally:
        groups.stop_all()


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    processes: tuple[Process, ...] = (),
    interval: float = 1,
) -> Any:
    """Poll `condition()` until it returns something truthy; fail after `timeout` seconds.

    Fails at once, with its log, if one of `processes` exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for process in processes:
            if process.popen.poll() is not None:
                pytest.fail(
                    f"{process.name} exited with {process.popen.returncode} while waiting for "
                    f"{what}\n{process.tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(process.tail() for process in processes)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    """POST a query to the webserver's /graphql; fail the test on GraphQL errors."""
    response = httpx.post(
        f"{base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        pytest.fail(f"GraphQL errors: {body['errors']}")
    return body["data"]


LAUNCH_RUN = """
mutation ($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""


def request_asset_run(url: str, key: Any) -> dict:
    """Ask the webserver to launch a run of one asset through GraphQL, as the UI's
    "Materialize" button does; returns its answer (`__typename`, and `run` or `message`)."""
    selector = {
        "repositoryLocationName": "batch_platform",
        "repositoryName": "__repository__",
        "jobName": "__ASSET_JOB",
        "assetSelection": [key.to_graphql_input()],
        "assetCheckSelection": [],  # the write, not the dbt tests: keeps the run short
    }
    return graphql(
        url, LAUNCH_RUN, {"executionParams": {"selector": selector, "runConfigData": {}}}
    )["launchPipelineExecution"]


def launch_asset_run(url: str, key: Any) -> str:
    """Launch a run of one asset through GraphQL, as the UI does; it is queued, not started."""
    answer = request_asset_run(url, key)
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


SENSORS = """
query {
  sensorsOrError(repositorySelector: {
    repositoryLocationName: "batch_platform", repositoryName: "__repository__"
  }) {
    __typename
    ... on Sensors { results { id name } }
  }
}"""

STOP_SENSOR = """
mutation ($id: String) {
  stopSensor(id: $id) { __typename ... on PythonError { message } }
}"""


def _sensors(url: str) -> list[dict] | None:
    """The platform's sensors (id, name), once the code location has loaded."""
    answer = graphql(url, SENSORS)["sensorsOrError"]
    if answer["__typename"] != "Sensors":
        return None
    return answer["results"]


def stop_sensors(url: str, webserver: Process, keep: tuple[str, ...] = ()) -> None:
    """Turn every sensor but `keep` off, as a user does with the UI's toggles, before a daemon
    starts.

    The platform's sensors run by default; a test that drives runs itself must not have the
    daemon launch runs of its own for the data it finds.
    """
    for sensor in wait_until(lambda: _sensors(url), 120, "the code location", (webserver,)):
        if sensor["name"] in keep:
            continue
        stopped = graphql(url, STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
        assert stopped["__typename"] == "StopSensorMutationResult", stopped


def unavailable(reason: str, detail: str = "") -> None:
    """A browser that cannot run fails the test on CI (CI=true) and skips it elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required on CI)\n{detail}".rstrip())
    pytest.skip(reason)


@contextmanager
def chromium_context(user_data_dir: Path) -> Iterator[Any]:
    """A Playwright browser context on Debian's Chromium with a fresh profile."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("playwright is not installed: .venv/bin/pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                user_data_dir=str(user_data_dir),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1600, "height": 1000},
            )
        except Error as error:
            first_line = str(error).splitlines()[0]
            unavailable(f"Chromium at {CHROMIUM} does not start: {first_line}", str(error))
        try:
            yield context
        finally:
            context.close()
