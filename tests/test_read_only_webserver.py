"""The viewers' webserver: `dagster-webserver --read-only` shows everything and launches nothing.

Dagster open source has no login, so docs/DEPLOY.md puts the full webserver on loopback behind
an authenticating proxy and gives viewers a read-only one. This proves the read-only one refuses
the launch the UI's "Materialize" button sends, and that the refusal is the flag's doing: a
normal webserver over the same instance accepts the very same request.
"""

import os
import shutil

import dagster as dg
import pytest
from dagster_ui import graphql, process_groups, request_asset_run

from batch_platform.paths import DATA_DIR_ENV, PROJECT_ROOT

pytestmark = pytest.mark.slow

SNAPSHOT = dg.AssetKey("analytics_snapshot")
RUN_IDS = "query { runsOrError { __typename ... on Runs { results { runId } } } }"


def run_ids(url: str) -> set[str]:
    answer = graphql(url, RUN_IDS)["runsOrError"]
    assert answer["__typename"] == "Runs", answer
    return {run["runId"] for run in answer["results"]}


def test_the_read_only_webserver_refuses_a_launch_the_normal_one_accepts(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    # Create the SQLite storage once, before two webservers open it at the same time.
    dg.DagsterInstance.from_config(str(home)).dispose()
    # No daemon: an accepted run stays queued, nothing executes. The secrets come from conftest.
    env = {**os.environ, "DAGSTER_HOME": str(home), DATA_DIR_ENV: str(data)}
    with process_groups() as processes:
        viewer, _ = processes.start_webserver(env, tmp_path / "read-only.log", "--read-only")
        editor, _ = processes.start_webserver(env, tmp_path / "webserver.log")

        refused = request_asset_run(viewer, SNAPSHOT)
        accepted = request_asset_run(editor, SNAPSHOT)

        assert refused == {"__typename": "UnauthorizedError", "message": "Authorization failed"}
        assert accepted["__typename"] == "LaunchRunSuccess", accepted
        # Both serve the same instance: the viewer sees the run the other one launched, and
        # it is the only run there is.
        assert run_ids(viewer) == run_ids(editor) == {accepted["run"]["runId"]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
    assert record.dagster_run.status == dg.DagsterRunStatus.QUEUED
    assert record.dagster_run.asset_selection == {SNAPSHOT}
