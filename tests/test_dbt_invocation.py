"""A step's dbt invocation reuses the last parse made for its data folder, and its window
reaches dbt through the environment without invalidating that parse."""

import os
import shutil
from datetime import date, timedelta

import dagster as dg
import duckdb

from batch_platform.paths import DATA_DIR_ENV, dbt_parse_path
from batch_platform.transform.dbt_invocation import (
    PARTIAL_PARSE,
    environment,
    keep_parse,
    seed_parse,
    target_root,
)

FULL_PARSE = "Unable to do partial parsing"
PARTIAL = "Partial parsing enabled"


def test_a_kept_parse_seeds_the_next_invocation_and_is_replaced_whole(tmp_path):
    cache = tmp_path / "cache" / "abc.msgpack"
    first, second = tmp_path / "first", tmp_path / "second"
    assert not seed_parse(first, cache)  # nothing kept yet: dbt parses in full
    assert not keep_parse(first, cache)  # an invocation that wrote no parse keeps nothing
    first.mkdir()
    (first / PARTIAL_PARSE).write_bytes(b"parse one")
    assert keep_parse(first, cache)
    assert seed_parse(second, cache)
    assert (second / PARTIAL_PARSE).read_bytes() == b"parse one"
    (second / PARTIAL_PARSE).write_bytes(b"parse two")
    assert keep_parse(second, cache)
    assert cache.read_bytes() == b"parse two"
    assert [p.name for p in cache.parent.iterdir()] == ["abc.msgpack"]  # no temporary left


def test_each_data_folder_keeps_its_own_parse(tmp_path):
    assert dbt_parse_path(tmp_path / "a") != dbt_parse_path(tmp_path / "b")
    assert dbt_parse_path(tmp_path / "a") == dbt_parse_path(tmp_path / "x" / ".." / "a")


def test_the_environment_is_set_for_what_starts_inside_and_restored(monkeypatch):
    monkeypatch.setenv("BATCH_PLATFORM_TEST_KEPT", "before")
    monkeypatch.delenv("BATCH_PLATFORM_TEST_NEW", raising=False)
    with environment({"BATCH_PLATFORM_TEST_KEPT": None, "BATCH_PLATFORM_TEST_NEW": "inside"}):
        assert "BATCH_PLATFORM_TEST_KEPT" not in os.environ
        assert os.environ["BATCH_PLATFORM_TEST_NEW"] == "inside"
    assert os.environ["BATCH_PLATFORM_TEST_KEPT"] == "before"
    assert "BATCH_PLATFORM_TEST_NEW" not in os.environ


def dbt_target(run_id: str):
    """The target folder of the run's (one) partitioned dbt invocation."""
    (target,) = target_root().glob(f"dbt_partitioned_models-{run_id[:7]}-*")
    return target


def test_a_second_window_reuses_the_parse_and_builds_only_its_own_days(
    pipeline, tmp_path, monkeypatch
):
    """Two runs of different days in a new data folder: the first parses the project in full,
    the second only checks the kept parse, and each replaces exactly its own day."""
    from support import landscape_days

    from batch_platform.definitions import dbt_partitioned_models, defs

    data = tmp_path / "data"
    shutil.copytree(pipeline, data)
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    dbt_parse_path(data).unlink(missing_ok=True)
    first_day, second_day = landscape_days()[:2]

    def orders_by_day() -> dict:
        with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
            return dict(
                con.execute(
                    "select order_date, count(*) from middle_platform.fct_orders group by 1"
                ).fetchall()
            )

    before = orders_by_day()
    logs, compiled = [], []
    for day in (first_day, second_day):
        result = dg.materialize(
            [dbt_partitioned_models],
            partition_key=day,
            resources={"dbt": defs.resources["dbt"]},
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        target = dbt_target(result.run_id)
        logs.append((target / "dbt.log").read_text())
        compiled.append(next(target.glob("compiled/**/stg_orders__order_events.sql")).read_text())
    assert FULL_PARSE in logs[0]
    assert FULL_PARSE not in logs[1] and PARTIAL in logs[1]
    # The window came through the environment: each build read its own day only...
    for day, sql in zip((first_day, second_day), compiled, strict=True):
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        assert f"cast('{day}' as date)" in sql and f"cast('{following}' as date)" in sql
    # ...and replaced it with what it was: no day lost or doubled.
    assert orders_by_day() == before


def test_the_dbt_resource_knows_dbts_version_without_starting_dbt_or_an_adapter():
    """dagster-dbt would run `dbt --version` and build a dbt adapter in every run process."""
    import re
    import subprocess

    from dagster_dbt import DbtCliResource
    from packaging.version import Version

    from batch_platform.dbt_project import DBT_EXECUTABLE
    from batch_platform.definitions import defs

    for member in ("_cli_version", "_initialize_dbt_core_adapter"):
        assert member in vars(DbtCliResource), f"dagster-dbt no longer has {member}"
    assert defs.resources["dbt"]._initialize_dbt_core_adapter(["build"]) is None
    reported = subprocess.run(
        [DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    installed = re.search(r"installed:\s*(\d+\.\d+\.\d+)", reported).group(1)
    assert defs.resources["dbt"]._cli_version == Version(installed)
