"""The Dagster UI in a real browser: the layered lineage, a backfill of several days that runs as
ONE run, and the README's tour clicked through on a fresh instance.

Real processes, no mocks: `dagster-webserver` and `dagster-daemon run` over a temporary
DAGSTER_HOME holding deploy/dagster.yaml (SQLite storage, queued runs, so the daemon launches
every run), the demo REST APIs, a private copy of the small test landscape, and Debian's Chromium
driven by Playwright. Screenshots and process logs go to tests/artifacts/ui_browser/.

The daemon starts with the platform's sensors running, as `make dev` does: the module first
waits for the first start to build the landscape by itself (the README's first tour step), then
stops the sensors, so every later run is started by the test.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_ui import (
    BIN,
    PROJECT_ROOT,
    WORKSPACE,
    Process,
    chromium_context,
    graphql,
    process_groups,
    stop_sensors,
    wait_until,
)
from support import LANDSCAPE_START, demo_apis

from batch_platform.paths import DATA_DIR_ENV

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).parent / "artifacts" / "ui_browser"
LAYER_GROUPS = ["infrastructure", "middle_platform", "scenario", "channel", "consistency"]
GROUPS = [*LAYER_GROUPS, "analytics"]
CLICKED_ASSET = dg.AssetKey(["raw", "orders", "order_events"])
BACKFILL_DAYS = ("2026-03-04", "2026-03-06")  # inclusive: three days
# The README's tour, on days the GraphQL backfill above leaves alone.
TOUR_DAY = "2026-03-03"
TOUR_BACKFILL_DAYS = ("2026-03-01", "2026-03-03")  # inclusive: three days
TOUR_SNAPSHOT_DAY = "2026-03-02"
SECONDS_FOR_A_TOUR_STEP = 480  # a backfill of many assets, steps one after another
SECONDS_FOR_THE_BOOTSTRAP = 420  # two runs: every extract for every day, then the rest
SECONDS_FOR_THE_BACKFILL = 360  # ~2 min on a quiet 2-core machine, 3.5 min under heavy load


@dataclass
class Dagster:
    url: str
    home: Path
    data: Path
    processes: tuple[Process, ...]  # webserver, daemon: a wait fails at once if one exits

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium with a fresh profile (fails on CI, skips elsewhere, if it can't run)."""
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        from playwright.sync_api import expect

        # generous: a 2-core machine runs the webserver, the daemon, dbt and the browser
        context.set_default_timeout(60_000)
        expect.set_options(timeout=30_000)
        yield context


COMMUNITY = "Join the Dagster community"


@pytest.fixture(scope="module")
def community_dialog_skipped(dagster, browser):
    """Skip Dagster's first-visit "Join the Dagster community" dialog once, before any test.

    It shows a while after the first page loads; met in the middle of a test it can open over
    another dialog, whose Skip button then never becomes clickable. The browser profile
    remembers the answer for every later page.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page()
    page.goto(f"{dagster.url}/assets")
    try:
        page.get_by_text(COMMUNITY).wait_for(timeout=30_000)
    except PlaywrightTimeout:
        pass  # not asked on this instance
    else:
        page.get_by_role("button", name="Skip").click()
        page.get_by_text(COMMUNITY).wait_for(state="hidden")
    page.close()


@pytest.fixture
def page(browser, community_dialog_skipped, request):
    page = browser.new_page()
    # Should Dagster ask again anyway, skip it whenever it shows.
    page.add_locator_handler(
        page.get_by_text(COMMUNITY), lambda: page.get_by_role("button", name="Skip").click()
    )
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:  # the test failed: keep what it saw
        screenshot(page, f"failed-{request.node.name}.png")
    page.close()


@pytest.fixture(scope="module")
def dagster(browser, landscape, tmp_path_factory):
    """Webserver + daemon over a fresh instance and a copy of the landscape; torn down after.

    Takes `browser` first so that without a browser nothing is started.
    """
    root = tmp_path_factory.mktemp("ui")
    data, home = root / "data", root / "dagster_home"
    shutil.copytree(landscape, data)
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with demo_apis(data), process_groups() as processes:
        env = {
            **os.environ,  # demo_apis put the API URLs and token here
            "DAGSTER_HOME": str(home),
            DATA_DIR_ENV: str(data),
            # the first partition is the landscape's first day, as `make dev` does it
            "BATCH_PLATFORM_START_DATE": LANDSCAPE_START.isoformat(),
            "PYTHONUNBUFFERED": "1",
        }
        url, webserver = processes.start_webserver(env, ARTIFACTS / "webserver.log")
        daemon = processes.start(
            "dagster-daemon",
            [str(BIN / "dagster-daemon"), "run", *WORKSPACE],
            env,
            ARTIFACTS / "daemon.log",
        )
        dagster = Dagster(url=url, home=home, data=data, processes=(webserver, daemon))
        # The first start, as in the README: the platform builds the landscape by itself.
        bootstrap = wait_until(
            lambda: bootstrapped(dagster),
            SECONDS_FOR_THE_BOOTSTRAP,
            "the first start",
            dagster.processes,
            3,
        )
        assert len(bootstrap) <= 3, [run.tags for run in bootstrap]
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in bootstrap), bootstrap
        # From here on every run is started by the test.
        stop_sensors(url, webserver)
        yield dagster


def bootstrapped(dagster: Dagster) -> list[dg.DagsterRun] | None:
    """The first start's runs, once they have all finished and the snapshot is published."""
    with dagster.instance() as instance:
        runs = instance.get_runs()
        if not runs or any(not run.is_finished for run in runs):
            return None
        if not instance.fetch_materializations(dg.AssetKey("analytics_snapshot"), limit=1).records:
            return None
        return runs


def screenshot(page, name: str, **kwargs) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **kwargs)


def test_lineage_shows_the_layers_as_groups_with_their_assets(dagster, page):
    from playwright.sync_api import expect

    from batch_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    expected = {
        spec.key.path[-1]: spec.group_name
        for spec in defs.resolve_all_asset_specs()
        if graph.get(spec.key).is_materializable
    }
    assert set(expected.values()) == set(GROUPS)

    page.set_viewport_size({"width": 1800, "height": 2000})  # the whole graph, readable
    page.goto(f"{dagster.url}/asset-groups")  # Lineage: the global asset graph
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS:
        expect(page.get_by_title(group, exact=True).first).to_be_visible()

    # Open every group in the sidebar tree: each then lists its assets by name.
    for group in GROUPS:
        row = page.locator("[class*=AssetSidebarNode_itemContainer]").filter(
            has=page.get_by_title(group, exact=True)
        )
        row.locator("[aria-label=arrow_drop_down]").click()
    for name in expected:
        expect(page.get_by_title(name, exact=True).first).to_be_attached()

    # And every group in the graph (the UI's shortcut for "Expand all groups").
    page.keyboard.press("Alt+e")
    for name in ("channel_daily_kpis", "order_events", "fct_orders"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    zoom_out = page.locator("[aria-label=zoom_out]").first
    for _ in range(3):
        zoom_out.click()
    page.wait_for_timeout(1000)  # let the graph settle after zooming
    screenshot(page, "1-lineage.png")


LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""

BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status runs(limit: 10) { id status } }
  }
}"""

BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def backfill_selection() -> list[dg.AssetKey]:
    """The daily-partitioned dbt models that read only partitioned assets, and their extracts.

    The two scenario models join current-state tables (unpartitioned, built by a whole-table
    run), which a fresh landscape does not have yet, so they are left out.
    """
    from batch_platform.definitions import dbt_partitioned_models, defs

    graph = defs.resolve_asset_graph()

    def ancestors(key: dg.AssetKey) -> set[dg.AssetKey]:
        found: set[dg.AssetKey] = set()
        todo = [key]
        while todo:
            for parent in graph.get(todo.pop()).parent_keys:
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        return found

    models = {
        key
        for key in dbt_partitioned_models.keys
        if all(graph.get(parent).is_partitioned for parent in ancestors(key))
    }
    selection = models | {parent for model in models for parent in ancestors(model)}
    assert dg.AssetKey(["channel", "channel_daily_kpis"]) in selection
    assert CLICKED_ASSET in selection
    return sorted(selection)


def test_a_backfill_of_several_days_runs_as_one_run(dagster, page):
    from playwright.sync_api import expect

    selection = backfill_selection()
    start, end = BACKFILL_DAYS
    # The same days for every asset. (With `partitionNames`, Dagster maps the days through the
    # settlement-window partition mapping, so the order models would target more days than
    # their parents and run in a second run.)
    params = {
        "partitionsByAssets": [
            {"assetKey": {"path": key.path}, "partitions": {"range": {"start": start, "end": end}}}
            for key in selection
        ],
        "title": "browser test: three days",
    }
    launched = graphql(dagster.url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished():
        backfill = graphql(dagster.url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill if backfill["status"] in BACKFILL_DONE else None

    backfill = wait_until(
        finished, SECONDS_FOR_THE_BACKFILL, f"backfill {backfill_id}", dagster.processes, 3
    )
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill

    with dagster.instance() as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1, [(run.run_id, run.asset_selection) for run in runs]
        (run,) = runs
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.asset_selection == set(selection)
        assert run.tags["dagster/asset_partition_range_start"] == start
        assert run.tags["dagster/asset_partition_range_end"] == end
        messages = [event.user_message or "" for event in instance.all_logs(run.run_id)]
    dbt_commands = [m for m in messages if m.startswith("Running dbt command")]
    windows = [m for m in messages if m.startswith("dbt window")]
    assert len(dbt_commands) == 1, dbt_commands
    assert windows == [
        "dbt window [2026-03-04, 2026-03-07): BATCH_PLATFORM_WINDOW_START=2026-03-04, "
        "BATCH_PLATFORM_WINDOW_END=2026-03-07"
    ], windows

    page.set_viewport_size({"width": 1600, "height": 1400})  # room for every asset's row
    page.goto(f"{dagster.url}/runs/b/{backfill_id}")
    expect(page.get_by_text(f"{start}...{end}")).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("channel / channel_daily_kpis").first).to_be_visible()
    screenshot(page, "3-backfill.png")
    page.get_by_role("tab", name="Runs").click()
    expect(page.get_by_text(run.run_id[:8]).first).to_be_visible()
    screenshot(page, "4-backfill-runs.png")


# ---- The README's tour, as a newcomer clicks it (README.md, "A tour of the UI") ----

BACKFILLS = """
query {
  partitionBackfillsOrError(limit: 50) {
    __typename
    ... on PartitionBackfills { results { id status } }
  }
}"""


def _backfill_ids(url: str) -> set[str]:
    answer = graphql(url, BACKFILLS)["partitionBackfillsOrError"]
    assert answer["__typename"] == "PartitionBackfills", answer
    return {backfill["id"] for backfill in answer["results"]}


@dataclass
class Launched:
    """What one click on *Launch* started: a backfill, or runs (Dagster launches a single
    partition as one run, several as a backfill)."""

    backfill_id: str | None
    run_ids: frozenset[str]


def _run_ids(dagster) -> set[str]:
    with dagster.instance() as instance:
        return {run.run_id for run in instance.get_runs()}


def launch_from_lineage(dagster, page, selection: str, days: str, count: int, shot: str):
    """Lineage: type the selection, *Materialize all…*, choose the days, *Launch*."""
    from playwright.sync_api import expect

    page.goto(f"{dagster.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    page.locator(".CodeMirror").first.click()  # "Search and filter assets"
    page.keyboard.type(selection)
    page.keyboard.press("Escape")  # close the suggestions, keep what was typed
    page.keyboard.press("Enter")
    page.wait_for_timeout(1000)  # the graph redraws for the selection
    screenshot(page, f"{shot}-selection.png")
    backfills_before, runs_before = _backfill_ids(dagster.url), _run_ids(dagster)
    page.get_by_role("button", name="Materialize all").first.click()
    # Dagster asks first when some upstream asset has never been materialised.
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    sure = page.get_by_role("button", name="Confirm")
    expect(dialog.or_(sure).first).to_be_visible()
    if sure.is_visible():
        sure.click()
    expect(dialog).to_be_visible()
    partitions = dialog.locator("input[placeholder^='ex: ']")  # a list or ranges of days
    show_all = dialog.get_by_role("button", name="Show all partitions")
    expect(partitions.or_(show_all).first).to_be_visible()
    if show_all.is_visible():  # at first only the last 90 days are offered
        show_all.click()
    partitions.fill(days)
    partitions.press("Enter")
    expect(dialog).to_contain_text(f"{count} partition")
    screenshot(page, f"{shot}-dialog.png")
    dialog.get_by_role("button", name=re.compile(r"^Launch (backfill|\d+ runs?)$")).click()
    expect(dialog).to_be_hidden()

    def started() -> Launched | None:
        backfills = _backfill_ids(dagster.url) - backfills_before
        if backfills:
            (backfill_id,) = backfills
            return Launched(backfill_id, frozenset())
        runs = _run_ids(dagster) - runs_before
        return Launched(None, frozenset(runs)) if runs else None

    return wait_until(started, 60, "the launch", dagster.processes)


def wait_for_success(dagster, launched: Launched) -> None:
    """Until the backfill or runs end; fails with the failed steps' errors unless all succeed."""
    if launched.backfill_id is not None:

        def finished():
            backfill = graphql(dagster.url, BACKFILL, {"id": launched.backfill_id})
            status = backfill["partitionBackfillOrError"]["status"]
            return status if status in BACKFILL_DONE else None

        status = wait_until(finished, SECONDS_FOR_A_TOUR_STEP, "the backfill", dagster.processes, 3)
        with dagster.instance() as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": launched.backfill_id}))
    else:

        def runs_done():
            with dagster.instance() as instance:
                runs = instance.get_runs(dg.RunsFilter(run_ids=list(launched.run_ids)))
            return runs if all(run.is_finished for run in runs) else None

        runs = wait_until(runs_done, SECONDS_FOR_A_TOUR_STEP, "the runs", dagster.processes, 3)
        status = "COMPLETED_SUCCESS"
    failed = [run for run in runs if run.status != dg.DagsterRunStatus.SUCCESS]
    with dagster.instance() as instance:
        errors = [
            _step_error(event)
            for run in failed
            for event in instance.all_logs(run.run_id)
            if event.dagster_event and event.dagster_event.is_step_failure
        ]
    assert not failed, f"{len(failed)} failed run(s): {errors}"
    assert status == "COMPLETED_SUCCESS" and runs, status


def _step_error(event) -> str:
    """A failed step's error, with the lines that name the cause (dbt's "... does not exist")."""
    error = getattr(event.dagster_event.event_specific_data, "error", None)
    text = error.to_string() if error is not None else (event.user_message or "")
    causes = [line.strip() for line in text.splitlines() if "Error" in line]
    return f"{event.step_key}: " + " | ".join(dict.fromkeys(causes))[:600]


def test_tour_a_day_of_order_events_and_everything_downstream(dagster, page):
    """Lineage: `key:"raw/orders/order_events"+`, *Materialize all…*, one day: it succeeds."""
    selection = f'key:"{CLICKED_ASSET.to_user_string()}"+'
    launched = launch_from_lineage(dagster, page, selection, TOUR_DAY, 1, "5-tour-day")
    try:
        wait_for_success(dagster, launched)
    finally:
        page.goto(f"{dagster.url}/runs")
        screenshot(page, "5-tour-day-runs.png")

    kpis = dg.AssetKey(["channel", "channel_daily_kpis"])
    with dagster.instance() as instance:
        assert TOUR_DAY in instance.get_materialized_partitions(kpis)
        assert TOUR_DAY in instance.get_materialized_partitions(CLICKED_ASSET)


def test_tour_a_three_day_backfill_of_the_channel_group(dagster, page):
    """Lineage: `+group:"channel"` (the group and all it reads), three days: it succeeds."""
    start, end = TOUR_BACKFILL_DAYS
    launched = launch_from_lineage(
        dagster, page, '+group:"channel"', f"[{start}...{end}]", 3, "6-tour-backfill"
    )
    assert launched.backfill_id is not None  # several days: a backfill
    try:
        wait_for_success(dagster, launched)
    finally:
        page.goto(f"{dagster.url}/runs/b/{launched.backfill_id}")
        screenshot(page, "6-tour-backfill.png")

    kpis = dg.AssetKey(["channel", "channel_daily_kpis"])
    with dagster.instance() as instance:
        materialized = instance.get_materialized_partitions(kpis)
    assert {"2026-03-01", "2026-03-02", "2026-03-03"} <= materialized
    page.goto(f"{dagster.url}/assets/channel/channel_daily_kpis")
    screenshot(page, "6-tour-kpis-asset.png")


def _readme_query_commands() -> list[str]:
    """The `batch-platform` lines of the README's Querying section, as written there."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Querying", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [
        line.split("  #", 1)[0].strip()
        for line in block.splitlines()
        if line.startswith(".venv/bin/batch-platform")
    ]
    assert len(commands) >= 3, commands
    return commands


def test_tour_the_snapshot_is_published_and_every_readme_query_gives_rows(dagster, page, tmp_path):
    """Lineage: `+key:"analytics_snapshot"` for a day publishes the snapshot; then `tables` and
    every query of the README's Querying section, run as written, give rows."""
    launched = launch_from_lineage(
        dagster, page, '+key:"analytics_snapshot"', TOUR_SNAPSHOT_DAY, 1, "7-tour-snapshot"
    )
    wait_for_success(dagster, launched)
    page.goto(f"{dagster.url}/assets/analytics_snapshot")
    screenshot(page, "7-tour-snapshot-asset.png")
    assert (dagster.data / "analytics.duckdb").is_file()

    # Run each command from a folder that looks like the project root, so what it writes
    # (gmv.csv) lands here, not in the repository.
    (tmp_path / ".venv").symlink_to(BIN.parent)
    (tmp_path / "analytics").symlink_to(PROJECT_ROOT / "analytics")
    env = {**os.environ, DATA_DIR_ENV: str(dagster.data), "COLUMNS": "200"}
    for command in _readme_query_commands():
        done = subprocess.run(  # noqa: S603 - the README's own commands
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)
        if "--output" in command:
            written = tmp_path / command.split("--output", 1)[1].split()[0]
            assert len(written.read_text().splitlines()) > 1, command  # a header and rows
            continue
        caption = re.search(r"(\d+) (rows|tables)", done.stdout)
        assert caption is not None and int(caption.group(1)) > 0, (command, done.stdout)
        if command.endswith(" tables"):
            rows = [line.split("│") for line in done.stdout.splitlines() if line.startswith("│")]
            counts = [row[3].strip() for row in rows]
            assert any(count.isdigit() and int(count) > 0 for count in counts), done.stdout
