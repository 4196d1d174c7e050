"""The instance settings in deploy/ are what Dagster actually applies.

Dagster merges the `run_coordinator` section (here only the run queue's look interval) with the
`concurrency` limits; a key set in both places is refused, and a limit Dagster dropped would only
show as runs or writers that are not limited. So the loaded instance is asked, not the YAML.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_embedded_instance_applies_the_queue_interval_and_keeps_every_limit(tmp_path: Path):
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert instance.run_monitoring_enabled


@pytest.mark.parametrize("section", ["run_coordinator", "run_monitoring", "freshness"])
def test_production_instance_shares_the_embedded_run_settings(section: str):
    """deploy/dagster.production.yaml differs in storage and the run limit, not in these."""
    embedded = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    production = yaml.safe_load((DEPLOY / "dagster.production.yaml").read_text())
    assert production[section] == embedded[section]
    assert production["concurrency"]["pools"] == embedded["concurrency"]["pools"]
