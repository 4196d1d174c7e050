"""dbt arguments are built by pure functions: one invocation per window, however many days."""

import json
from datetime import datetime

from batch_platform.transform.dbt_vars import build_args, partition_vars


def test_partition_vars_are_the_half_open_day_window():
    assert partition_vars(datetime(2026, 3, 1), datetime(2026, 3, 31)) == {
        "min_date": "2026-03-01",
        "max_date": "2026-03-31",
    }


def test_a_window_of_thirty_days_is_one_build_invocation():
    args = build_args((datetime(2026, 3, 1), datetime(2026, 3, 31)))
    assert args[0] == "build" and args.count("--vars") == 1
    assert json.loads(args[args.index("--vars") + 1]) == {
        "max_date": "2026-03-31",
        "min_date": "2026-03-01",
    }


def test_without_a_window_everything_is_built():
    assert build_args(None) == ["build"]


def test_the_settlement_look_around_matches_the_dbt_var():
    """The Dagster partition mapping and the dbt models must agree on how far orders reach."""
    import yaml

    from batch_platform.paths import DBT_PROJECT_DIR
    from batch_platform.transform.dbt_assets import SETTLEMENT_DAYS

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["settlement_days"] == SETTLEMENT_DAYS
