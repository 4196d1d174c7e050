"""Declarative automation evaluated against a real instance's event log."""

from datetime import datetime, timedelta

import dagster as dg

from batch_platform.definitions import defs

ORDERS = dg.AssetKey(["raw", "orders", "order_events"])
STAGING = dg.AssetKey(["staging", "stg_orders__order_events"])
FACT = dg.AssetKey(["middle_platform", "fct_orders"])
ITEMS = dg.AssetKey(["middle_platform", "fct_order_items"])
KPIS = dg.AssetKey(["channel", "channel_daily_kpis"])
SESSIONS = dg.AssetKey(["staging", "stg_clickstream__sessions"])
NOW = datetime(2026, 3, 20, 12)


def days(first: str, count: int) -> set[str]:
    start = datetime.fromisoformat(first)
    return {(start + timedelta(days=i)).date().isoformat() for i in range(count)}


def test_an_upstream_day_updating_requests_exactly_the_days_downstream_that_read_it():
    with dg.instance_for_test() as instance:
        # The sessions of those days were built before; marts wait for inputs that exist.
        for day in days("2026-02-20", 28):
            instance.report_runless_asset_event(dg.AssetMaterialization(SESSIONS, partition=day))
        baseline = dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW)
        # A late file re-opened an old day of the orders extract.
        instance.report_runless_asset_event(dg.AssetMaterialization(ORDERS, partition="2026-03-05"))
        result = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=baseline.cursor
        )
        assert result.get_requested_partitions(STAGING) == {"2026-03-05"}
        # Order-keyed models (the order fact and its lines) read events a settlement period
        # (7 days) around their day, and the marts above them follow in the same tick (one run,
        # in dependency order).
        window = days("2026-02-26", 15)
        assert result.get_requested_partitions(FACT) == window
        assert result.get_requested_partitions(ITEMS) == window
        assert result.get_requested_partitions(KPIS) == window
        # Nothing upstream of the change, and no other day, is touched.
        assert result.get_requested_partitions(ORDERS) == set()

        # The requested run materialises them; the next tick requests nothing again.
        for key, partitions in (
            (STAGING, {"2026-03-05"}),
            (ITEMS, window),
            (FACT, window),
            (KPIS, window),
        ):
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
        instance.report_runless_asset_event(dg.AssetMaterialization(ORDERS, partition="2026-03-05"))
        result = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=NOW, cursor=baseline.cursor
        )
        # No session day was ever built: the channel KPIs do not run into a missing table.
        assert result.get_requested_partitions(FACT)
        assert result.get_requested_partitions(KPIS) == set()


def test_the_catch_up_schedule_is_off_in_dev_on_in_production_and_asks_for_yesterday(
    monkeypatch,
):
    from batch_platform.dbt_project import load_manifest
    from batch_platform.registry import load_registry
    from batch_platform.schedules import build_catch_up_schedule

    specs = load_registry(load_manifest())
    monkeypatch.delenv("BATCH_PLATFORM_ENV", raising=False)
    assert build_catch_up_schedule(specs).default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("BATCH_PLATFORM_ENV", "production")
    schedule = build_catch_up_schedule(specs)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 3, 10, 1, 30)
        )
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
