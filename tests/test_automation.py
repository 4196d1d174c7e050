"""Declarative automation evaluated against a real instance's event log."""

from datetime import datetime, timedelta

import dagster as dg
import pytest

from batch_platform.definitions import defs

ORDERS = dg.AssetKey(["raw", "orders", "order_events"])
STAGING = dg.AssetKey(["staging", "stg_orders__order_events"])
FACT = dg.AssetKey(["middle_platform", "fct_orders"])
ITEMS = dg.AssetKey(["middle_platform", "fct_order_items"])
KPIS = dg.AssetKey(["channel", "channel_daily_kpis"])
SESSIONS = dg.AssetKey(["staging", "stg_clickstream__sessions"])
SESSIONS_RAW = dg.AssetKey(["raw", "clickstream", "sessions"])
NOW = datetime(2026, 3, 20, 12)


def days(first: str, count: int) -> set[str]:
    start = datetime.fromisoformat(first)
    return {(start + timedelta(days=i)).date().isoformat() for i in range(count)}


def test_an_extract_update_is_left_to_the_downstream_sensor():
    """Automation does not climb the graph after an extract: that is one downstream run."""
    with dg.instance_for_test() as instance:
        baseline = dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW)
        instance.report_runless_asset_event(dg.AssetMaterialization(ORDERS, partition="2026-03-05"))
        result = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=baseline.cursor
        )
        assert result.total_requested == 0


def test_a_model_rebuilt_by_hand_requests_exactly_the_days_downstream_that_read_it():
    with dg.instance_for_test() as instance:
        # The sessions of those days were built before; marts wait for inputs that exist.
        for day in days("2026-02-20", 28):
            instance.report_runless_asset_event(dg.AssetMaterialization(SESSIONS, partition=day))
        baseline = dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW)
        # Someone rebuilt an old day of the order events' staging model from the UI.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(STAGING, partition="2026-03-05")
        )
        result = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=baseline.cursor
        )
        # Order-keyed models (the order fact and its lines) read events a settlement period
        # (7 days) around their day, and the marts above them follow in the same tick (one run,
        # in dependency order).
        window = days("2026-02-26", 15)
        assert result.get_requested_partitions(FACT) == window
        assert result.get_requested_partitions(ITEMS) == window
        assert result.get_requested_partitions(KPIS) == window
        # Nothing upstream of the change, and no other day, is touched.
        assert result.get_requested_partitions(ORDERS) == set()
        assert result.get_requested_partitions(STAGING) == set()

        # The requested run materialises them; the next tick requests nothing again.
        for key, partitions in ((ITEMS, window), (FACT, window), (KPIS, window)):
            for partition in partitions:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(key, partition=partition)
                )
        settled = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=result.cursor
        )
        for key in (STAGING, ITEMS, FACT, KPIS):
            assert settled.get_requested_partitions(key) == set(), key


def test_a_mart_waits_until_the_days_it_joins_exist():
    with dg.instance_for_test() as instance:
        baseline = dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(STAGING, partition="2026-03-05")
        )
        result = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=baseline.cursor
        )
        # No session day was ever built: the channel KPIs do not run into a missing table.
        assert result.get_requested_partitions(FACT)
        assert result.get_requested_partitions(KPIS) == set()


def downstream_tick(instance, cursor=None):
    sensor = defs.get_sensor_def("downstream_sensor")
    # As a context manager: a context that opened an instance of its own closes it on exit
    # (an unclosed one leaves Dagster's current-instance state pointing at a dead instance).
    with dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor) as context:
        return sensor.evaluate_tick(context)


def test_the_downstream_sensor_takes_changed_days_and_their_window_in_one_run():
    downstream = {key for asset in defs.assets for key in asset.keys if key.path[0] != "raw"} | {
        dg.AssetKey(["raw", "platform", "quarantine"])
    }
    with dg.instance_for_test() as instance:
        first = downstream_tick(instance)
        assert first.run_requests == []
        # Two extracts of one day, and a late file re-extracted for a day two days earlier.
        for key, day in (
            (ORDERS, "2026-03-05"),
            (SESSIONS_RAW, "2026-03-05"),
            (ORDERS, "2026-03-03"),
        ):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
        result = downstream_tick(instance, first.cursor)
        [request] = result.run_requests
        assert set(request.asset_selection) == downstream
        # The days touched, widened by the settlement windows (the reconciliation reads the
        # order fact 7 days around its day, which reads events 7 days around its own), in one
        # range run.
        assert request.tags["dagster/asset_partition_range_start"] == "2026-02-17"
        assert request.tags["dagster/asset_partition_range_end"] == "2026-03-19"
        # Nothing new: nothing requested, however often it ticks.
        assert downstream_tick(instance, result.cursor).run_requests == []


def test_a_days_reach_adds_up_the_windows_along_every_path():
    """Extract -> staging (same day) -> fact (reads 7 days around) -> mart (reads the fact 3
    days back and the staging day): a staging day D changes facts D-7..D+7 and marts up to
    D+10; a side branch on the identity changes only D."""
    from batch_platform.sensors import day_reach

    daily = dg.DailyPartitionsDefinition(start_date="2026-03-01")
    around = dg.TimeWindowPartitionMapping(start_offset=-7, end_offset=7)
    back = dg.TimeWindowPartitionMapping(start_offset=-3, end_offset=0)
    specs = [
        dg.AssetSpec("raw", partitions_def=daily),
        dg.AssetSpec("stg", deps=["raw"], partitions_def=daily),
        dg.AssetSpec(
            "fact", deps=[dg.AssetDep("stg", partition_mapping=around)], partitions_def=daily
        ),
        dg.AssetSpec(
            "mart", deps=[dg.AssetDep("fact", partition_mapping=back), "stg"], partitions_def=daily
        ),
        dg.AssetSpec("side", deps=["raw"], partitions_def=daily),
    ]
    assert day_reach(specs, [dg.AssetKey("raw")]) == (-7, 10)
    assert day_reach([specs[0], specs[1], specs[4]], [dg.AssetKey("raw")]) == (0, 0)


@pytest.mark.parametrize(
    "unfinished",
    [
        # Another extract run is still queued: its days should share the downstream run.
        SESSIONS_RAW,
        # A run above the extracts (an earlier downstream run, a person's, the automation's) is
        # still unfinished: a second over overlapping days would rebuild them at the same time.
        KPIS,
    ],
)
def test_the_downstream_sensor_waits_for_unfinished_runs_that_write_the_graph(unfinished):
    with dg.instance_for_test() as instance:
        first = downstream_tick(instance)
        instance.report_runless_asset_event(dg.AssetMaterialization(ORDERS, partition="2026-03-05"))
        queued = instance.create_run_for_job(
            defs.resolve_implicit_global_asset_job_def(),
            asset_selection=frozenset({unfinished}),
            tags={"dagster/partition": "2026-03-06"},
        )
        waiting = downstream_tick(instance, first.cursor)
        assert waiting.run_requests == []
        instance.report_run_failed(queued)
        result = downstream_tick(instance, waiting.cursor)
        [request] = result.run_requests
        assert request.tags["dagster/asset_partition_range_start"] == "2026-02-19"
        assert request.tags["dagster/asset_partition_range_end"] == "2026-03-19"


def test_the_catch_up_schedule_is_off_in_dev_on_in_production_and_asks_for_yesterday():
    from batch_platform.dbt_project import load_manifest
    from batch_platform.partitions import daily_partitions_from_environment
    from batch_platform.registry import load_registry
    from batch_platform.schedules import build_catch_up_schedule

    specs = load_registry(load_manifest())
    days = daily_partitions_from_environment()
    stopped = build_catch_up_schedule(specs, days, production=False)
    assert stopped.default_status == dg.DefaultScheduleStatus.STOPPED
    schedule = build_catch_up_schedule(specs, days, production=True)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 3, 10, 1, 30)
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-03-09"]


# Three daily assets shaped like the race the latency benchmark caught: a fact (`FACT_LIKE`)
# reads a staging table (`STAGING_LIKE`); a mart (`MART_LIKE`) reads both, as the
# reconciliation reads the order fact and staging tables.
STAGING_LIKE = dg.AssetKey("staging_like")
FACT_LIKE = dg.AssetKey("fact_like")
MART_LIKE = dg.AssetKey("mart_like")
DAILY = dg.DailyPartitionsDefinition(start_date="2026-03-01")
DAY = "2026-03-05"


def settlement_defs(fact_condition: dg.AutomationCondition | None, mart_waits: bool):
    """The platform's conditions on three toy assets; `fact_condition=None` stands for a fact
    that is not requested this tick (in the platform: still running from an earlier run)."""
    from batch_platform.automation import inputs_settled, upstream_updated

    mart_condition = upstream_updated() & inputs_settled() if mart_waits else upstream_updated()
    specs = [
        dg.AssetSpec(STAGING_LIKE, partitions_def=DAILY),
        dg.AssetSpec(
            FACT_LIKE,
            deps=[STAGING_LIKE],
            partitions_def=DAILY,
            automation_condition=fact_condition,
        ),
        dg.AssetSpec(
            MART_LIKE,
            deps=[FACT_LIKE, STAGING_LIKE],
            partitions_def=DAILY,
            automation_condition=mart_condition,
        ),
    ]
    return dg.Definitions(assets=specs)


def tick(defs, instance, cursor=None):
    return dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW, cursor=cursor)


def first_tick(defs, instance):
    """The first tick on an instance that has a history, as the platform's always has.

    Dagster's `all_new_updates_have_run_tags` sees nothing new after a tick on an empty event
    log (no event id to count from); the daemon's first tick follows the bootstrap's events.
    """
    instance.report_runless_asset_event(dg.AssetMaterialization("history"))
    return tick(defs, instance)


def materialize(instance, *keys: dg.AssetKey) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=DAY))


def staging_updated(defs, instance):
    """A first tick, then the staging day updates, then the tick that sees it."""
    baseline = tick(defs, instance)
    materialize(instance, STAGING_LIKE)
    return tick(defs, instance, baseline.cursor)


def test_a_mart_waits_while_a_model_it_reads_is_due_to_be_rebuilt():
    from batch_platform.automation import upstream_updated

    with dg.instance_for_test() as instance:
        defs = settlement_defs(fact_condition=None, mart_waits=True)
        # The staging day updates; the fact that reads it is not rebuilt in this tick.
        waiting = staging_updated(defs, instance)
        assert waiting.get_requested_partitions(MART_LIKE) == set()
        # Once the fact has been rebuilt from the new staging day, the mart goes.
        materialize(instance, FACT_LIKE)
        after = tick(defs, instance, waiting.cursor)
        assert after.get_requested_partitions(MART_LIKE) == {DAY}

    # When the fact is requested in the same tick, both go together (one run, in order).
    with dg.instance_for_test() as instance:
        together = staging_updated(
            settlement_defs(fact_condition=upstream_updated(), mart_waits=True), instance
        )
        assert together.get_requested_partitions(FACT_LIKE) == {DAY}
        assert together.get_requested_partitions(MART_LIKE) == {DAY}


def test_without_inputs_settled_the_mart_would_read_the_stale_fact():
    """The contrast that shows the test above can fail: the race the condition prevents."""
    with dg.instance_for_test() as instance:
        result = staging_updated(settlement_defs(fact_condition=None, mart_waits=False), instance)
        assert result.get_requested_partitions(MART_LIKE) == {DAY}


def test_an_unchanged_re_extract_leads_to_no_downstream_run(data_dir):
    """Caching by content: a day re-extracted with nothing new moves nothing downstream."""
    from batch_platform.definitions import extracts

    orders = next(asset for asset in extracts if ORDERS in asset.keys)
    day = "2026-03-02"

    def extract(instance) -> None:
        assert dg.materialize([orders], partition_key=day, instance=instance).success

    with dg.instance_for_test() as instance:
        first = downstream_tick(instance)
        extract(instance)
        changed = downstream_tick(instance, first.cursor)
        assert len(changed.run_requests) == 1
        # The same landing files again (a re-poll, a catch-up, a person clicking twice).
        extract(instance)
        same = downstream_tick(instance, changed.cursor)
        assert same.run_requests == []
        # A late file lands for that day: the partition changes, so the day moves again.
        late = data_dir / "landing" / "orders" / "order_events" / f"dt={day}" / "zz-late.jsonl"
        late.write_text("not json\n")
        extract(instance)
        again = downstream_tick(instance, same.cursor)
        assert len(again.run_requests) == 1


def staging_and_fact() -> tuple[dg.AssetsDefinition, dg.Definitions]:
    """A staging asset that runs (one day or a range in one run) and a fact that follows it by
    the platform's `upstream_updated`: the staging asset, and both as definitions."""
    from batch_platform.automation import upstream_updated

    @dg.asset(
        key=STAGING_LIKE, partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run()
    )
    def staging() -> None:
        """Staging days, rebuilt."""

    fact = dg.AssetSpec(
        FACT_LIKE,
        deps=[STAGING_LIKE],
        partitions_def=DAILY,
        automation_condition=upstream_updated(),
    )
    return staging, dg.Definitions(assets=[staging, fact])


RANGE = {
    "dagster/asset_partition_range_start": "2026-03-03",
    "dagster/asset_partition_range_end": DAY,
}


@pytest.mark.parametrize(
    ("by_sensor", "window", "expected"),
    [
        (True, None, set()),
        (False, None, {DAY}),
        # The CI failure of c03e079: Dagster's `executed_with_tags` looks only at the asset's
        # latest materialisation, so every day of the sensor's range run but the last looked
        # "updated by hand" and was rebuilt again by automation.
        (True, RANGE, set()),
        (False, RANGE, days("2026-03-03", 3)),
    ],
    ids=["sensor-day", "hand-day", "sensor-range", "hand-range"],
)
def test_what_the_downstream_sensors_run_built_moves_nothing_by_automation(
    by_sensor, window, expected
):
    """Its run rebuilt every day a change reaches, one day or several in one run; the same
    update made by hand is followed, day by day."""
    from batch_platform.sensors import DOWNSTREAM, TRIGGER_TAG

    staging, toy = staging_and_fact()
    tags = {**({TRIGGER_TAG: DOWNSTREAM} if by_sensor else {}), **(window or {})}
    with dg.instance_for_test() as instance:
        baseline = first_tick(toy, instance)
        partition = None if window else DAY
        assert dg.materialize([staging], partition_key=partition, instance=instance, tags=tags)
        after = tick(toy, instance, baseline.cursor)
        assert after.get_requested_partitions(FACT_LIKE) == expected


@pytest.mark.parametrize(
    ("settle_setting", "expected"),
    [(True, set()), (False, {DAY})],
    ids=["platform-setting", "dagster-default"],
)
def test_a_sensor_run_that_commits_during_a_tick_is_not_taken_for_a_hand_update(
    settle_setting, expected, monkeypatch
):
    """The race test_daemon_e2e once lost to (an extra snapshot run): a tick captures the event
    log's newest id, then the downstream sensor's run commits a materialisation, then the tick
    evaluates. Dagster's default reads "newly updated" past the captured id but which runs wrote
    the update only up to it, so the sensor's update looked made by hand. deploy/platform.env's
    setting bounds both reads by the same id: the update waits for the next tick, which sees it
    whole. The bound is held back here by hand, as the commit's timing cannot be arranged."""
    from batch_platform.sensors import DOWNSTREAM, TRIGGER_TAG
    from benchmarks.deploy_env import PLATFORM_ENV, deploy_environment

    setting = "DAGSTER_AUTOMATION_TICK_SETTLE_SECONDS"
    if settle_setting:
        monkeypatch.setenv(setting, deploy_environment(PLATFORM_ENV)[setting])
    else:
        monkeypatch.delenv(setting, raising=False)

    staging, toy = staging_and_fact()
    with dg.instance_for_test() as instance:
        baseline = first_tick(toy, instance)
        captured = instance.event_log_storage.get_maximum_record_id()
        tags = {TRIGGER_TAG: DOWNSTREAM}
        assert dg.materialize([staging], partition_key=DAY, instance=instance, tags=tags)
        # The tick captured its bound before the run's events were committed.
        with monkeypatch.context() as during:
            during.setattr(instance.event_log_storage, "get_maximum_record_id", lambda: captured)
            racing = tick(toy, instance, baseline.cursor)
        assert racing.get_requested_partitions(FACT_LIKE) == expected
        if settle_setting:
            # The next tick sees the sensor's update, and its run, and leaves it alone.
            after = tick(toy, instance, racing.cursor)
            assert after.get_requested_partitions(FACT_LIKE) == set()
