"""dbt arguments are built by pure functions: one invocation per window, however many days."""

import json
from datetime import datetime

from batch_platform.paths import DBT_PROJECT_DIR
from batch_platform.transform.dbt_vars import (
    BUILD_ARGS,
    WINDOW_ENV,
    partition_vars,
    vars_args,
    window_environment,
)

MARCH = (datetime(2026, 3, 1), datetime(2026, 3, 31))


def test_partition_vars_are_the_half_open_day_window():
    assert partition_vars(*MARCH) == {"min_date": "2026-03-01", "max_date": "2026-03-31"}


def test_a_window_of_thirty_days_is_one_build_invocation_with_the_window_in_its_environment():
    """No `--vars`: a changed var makes dbt parse the whole project again."""
    assert BUILD_ARGS == ("build",)
    assert window_environment(MARCH) == {
        "BATCH_PLATFORM_WINDOW_START": "2026-03-01",
        "BATCH_PLATFORM_WINDOW_END": "2026-03-31",
    }


def test_without_a_window_the_variables_are_unset_so_nothing_narrows_a_whole_build():
    assert window_environment(None) == {
        "BATCH_PLATFORM_WINDOW_START": None,
        "BATCH_PLATFORM_WINDOW_END": None,
    }


def test_by_hand_the_same_window_is_passed_as_vars():
    args = vars_args(MARCH)
    assert args[0] == "--vars" and json.loads(args[1]) == partition_vars(*MARCH)
    assert vars_args(None) == []


def test_the_macros_read_the_same_variable_names():
    """The window macros name the variables themselves (Jinja cannot import Python)."""
    macros = (DBT_PROJECT_DIR / "macros" / "partition_window.sql").read_text()
    for var, env in WINDOW_ENV.items():
        assert f"'{var}': '{env}'" in macros, (var, env)


def test_the_settlement_look_around_matches_the_dbt_var():
    """The Dagster partition mapping and the dbt models must agree on how far orders reach."""
    import yaml

    from batch_platform.paths import DBT_PROJECT_DIR
    from batch_platform.transform.dbt_assets import SETTLEMENT_DAYS

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["settlement_days"] == SETTLEMENT_DAYS
