"""The Dagster UI in a real browser: the layered lineage, a day materialised by clicking, and a
backfill of several days that runs as ONE run.

Real processes, no mocks: `dagster-webserver` and `dagster-daemon run` over a temporary
DAGSTER_HOME holding deploy/dagster.yaml (SQLite storage, queued runs, so the daemon launches
every run), the demo REST APIs, a private copy of the small test landscape, and Debian's Chromium
driven by Playwright. Screenshots and process logs go to tests/artifacts/ui_browser/.

The platform's sensors are stopped before the daemon starts: every run here is started by the
test, and the sensors have tests of their own.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster_ui import (
    BIN,
    PROJECT_ROOT,
    Process,
    chromium_context,
    free_port,
    graphql,
    http_ok,
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
CLICKED_DAY = "2026-03-03"
BACKFILL_DAYS = ("2026-03-04", "2026-03-06")  # inclusive: three days
SECONDS_FOR_A_RUN = 180
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    with demo_apis(data), process_groups() as processes:
        env = {
            **os.environ,  # demo_apis put the API URLs and token here
            "DAGSTER_HOME": str(home),
            DATA_DIR_ENV: str(data),
            # the first partition is the landscape's first day, as `make dev` does it
            "BATCH_PLATFORM_START_DATE": LANDSCAPE_START.isoformat(),
            "PYTHONUNBUFFERED": "1",
        }
        workspace = ["-w", str(PROJECT_ROOT / "workspace.yaml")]
        webserver = processes.start(
            "dagster-webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *workspace],
            env,
            ARTIFACTS / "webserver.log",
        )
        wait_until(lambda: http_ok(f"{url}/server_info"), 180, "/server_info", (webserver,))
        stop_sensors(url, webserver)
        daemon = processes.start(
            "dagster-daemon",
            [str(BIN / "dagster-daemon"), "run", *workspace],
            env,
            ARTIFACTS / "daemon.log",
        )
        yield Dagster(url=url, home=home, data=data, processes=(webserver, daemon))


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


def test_a_day_materialised_by_clicking_runs_and_succeeds(dagster, page):
    from playwright.sync_api import expect

    page.goto(f"{dagster.url}/assets/{CLICKED_ASSET.to_user_string()}")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog).to_contain_text("Launch runs to materialize raw / orders / order_events")
    partitions = dialog.locator("input[placeholder^='ex: ']")  # a list or ranges of days
    show_all = dialog.get_by_role("button", name="Show all partitions")
    expect(partitions.or_(show_all).first).to_be_visible()
    if show_all.is_visible():  # at first only the last 90 days are offered
        show_all.click()
    partitions.fill(CLICKED_DAY)
    partitions.press("Enter")
    expect(dialog).to_contain_text("1 partition")
    dialog.get_by_role("button", name="Launch 1 run").click()

    expect(page.get_by_text("Launched run")).to_be_visible()  # a toast, linking to the run
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url("**/runs/*")
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.get_by_text(f"partition: {CLICKED_DAY}")).to_be_visible()
    # The run page follows the run live: queued, started by the daemon, then its status.
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(
        timeout=SECONDS_FOR_A_RUN * 1000
    )
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    screenshot(page, "2-materialize-run.png")

    with dagster.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == CLICKED_DAY
        assert run.asset_selection == {CLICKED_ASSET}
        event = instance.get_latest_materialization_event(CLICKED_ASSET)
        assert event is not None and event.run_id == run_id
        assert event.dagster_event.partition == CLICKED_DAY
    lake_file = dagster.data / "lake" / "raw" / "orders" / "order_events" / f"dt={CLICKED_DAY}"
    assert (lake_file / "data.parquet").is_file()


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
        dbt_commands = [
            event.user_message
            for event in instance.all_logs(run.run_id)
            if (event.user_message or "").startswith("Running dbt command")
        ]
    assert len(dbt_commands) == 1, dbt_commands
    assert '"max_date": "2026-03-07", "min_date": "2026-03-04"' in dbt_commands[0]

    page.set_viewport_size({"width": 1600, "height": 1400})  # room for every asset's row
    page.goto(f"{dagster.url}/runs/b/{backfill_id}")
    expect(page.get_by_text(f"{start}...{end}")).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("channel / channel_daily_kpis").first).to_be_visible()
    screenshot(page, "3-backfill.png")
    page.get_by_role("tab", name="Runs").click()
    expect(page.get_by_text(run.run_id[:8]).first).to_be_visible()
    screenshot(page, "4-backfill-runs.png")
