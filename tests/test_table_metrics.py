"""Every materialisation carries numeric figures the UI plots over time, and a partition's
figures describe that partition: its own day's rows, never the whole table or the whole run.

The shared pipeline builds all eight days of the partitioned dbt models in ONE range run
(conftest.py), so each day's materialisation of a model must carry that day's figures; the
extracts of a three-day range run likewise.
"""

from collections import defaultdict
from datetime import date

import dagster as dg
import pytest
from support import demo_apis, expected_counts, landscape_days, warehouse

from batch_platform.dbt_project import load_manifest
from batch_platform.definitions import days as platform_days
from batch_platform.transform.table_metrics import (
    ROW_COUNT,
    model_query,
    partition_column,
    quoted_table,
)

SUMMARY = {
    "name": "reconciliation_daily_summary",
    "schema": "consistency",
    "alias": None,
    "config": {"pre-hook": [{"sql": "{{ delete_partition_window('summary_date') }}"}]},
}
# The day column of a few partitioned models, written out here rather than read from the
# manifest, so the test holds the figures to the tables' own meaning.
DAY_COLUMNS = {
    "staging/stg_orders__order_events": "event_date",
    "middle_platform/fct_orders": "order_date",
    "middle_platform/fct_payments": "payment_date",
    "channel/channel_daily_kpis": "activity_date",
    "consistency/reconciliation_breaks": "break_date",
    "consistency/reconciliation_daily_summary": "summary_date",
}


def test_identifiers_are_quoted_and_window_days_are_bound_never_formatted():
    hostile = {"name": "x", "schema": 'a"; drop table t; --', "alias": "b"}
    assert quoted_table(hostile) == '"a""; drop table t; --"."b"'

    window = (date(2026, 3, 1), date(2026, 3, 3))
    names, sql, params = model_query(SUMMARY, window)
    assert names == (ROW_COUNT, "break_rate", "breaks", "orders_checked")
    assert params == [date(2026, 3, 1), date(2026, 3, 3)]
    assert "2026" not in sql and sql.count("?") == 2
    assert "group by 1" in sql and '"summary_date"' in sql


def test_without_a_window_the_figures_are_the_whole_tables():
    names, sql, params = model_query(SUMMARY, None)
    assert names[0] == ROW_COUNT and params == [] and "group by" not in sql


def test_every_partitioned_model_names_its_day_column():
    models = [n for n in load_manifest()["nodes"].values() if n["resource_type"] == "model"]
    incremental = [n for n in models if n["config"]["materialized"] == "incremental"]
    assert incremental
    assert {n["name"]: partition_column(n) for n in incremental if not partition_column(n)} == {}


def _per_partition(results) -> dict[str, dict[str, dg.AssetMaterialization]]:
    """Materialisations by asset key, then by partition (None for unpartitioned assets)."""
    found: dict[str, dict[str, dg.AssetMaterialization]] = defaultdict(dict)
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            found[materialization.asset_key.to_user_string()][materialization.partition] = (
                materialization
            )
    return found


def test_each_day_of_a_range_run_records_that_days_rows(built_pipeline):
    materializations = _per_partition(built_pipeline.dbt_runs)
    days = landscape_days()
    with warehouse(built_pipeline.data) as con:
        for key, column in DAY_COLUMNS.items():
            assert set(materializations[key]) == set(days), key
            table = ".".join(key.split("/"))
            counted = dict(
                con.execute(
                    f"select cast({column} as date)::varchar, count(*) from {table} group by 1"  # noqa: S608
                ).fetchall()
            )
            (whole,) = con.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
            if key == "middle_platform/fct_orders":
                assert len({counted.get(day, 0) for day in days}) > 1  # the days differ
            for day in days:
                shown = materializations[key][day].metadata[ROW_COUNT].value
                assert shown == counted.get(day, 0), (key, day)
                assert shown < whole, (key, day)

        summary = materializations["consistency/reconciliation_daily_summary"]
        for day in days:
            rate, breaks, checked = con.execute(
                "select max(break_rate), sum(breaks), sum(orders_checked)"
                " from consistency.reconciliation_daily_summary where summary_date = ?",
                [date.fromisoformat(day)],
            ).fetchone()
            (listed,) = con.execute(
                "select count(*) from consistency.reconciliation_breaks where break_date = ?",
                [date.fromisoformat(day)],
            ).fetchone()
            metadata = summary[day].metadata
            assert metadata["breaks"].value == breaks == listed, day
            assert metadata["orders_checked"].value == checked, day
            assert metadata["break_rate"].value == pytest.approx(float(rate or 0)), day
        assert sum(summary[day].metadata["breaks"].value for day in days) > 0


def test_unpartitioned_models_record_their_whole_tables(built_pipeline):
    materializations = _per_partition(built_pipeline.dbt_runs)
    with warehouse(built_pipeline.data) as con:
        for key in ("middle_platform/dim_products", "consistency/quarantine_daily_summary"):
            table = ".".join(key.split("/"))
            (rows,) = con.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
            assert materializations[key][None].metadata[ROW_COUNT].value == rows > 0
        (quarantined,) = con.execute(
            "select sum(records) from consistency.quarantine_daily_summary"
        ).fetchone()
    quarantine = materializations["consistency/quarantine_daily_summary"][None].metadata
    assert quarantine["quarantined_records"].value == quarantined > 0


def test_each_day_of_an_extract_range_run_records_that_days_figures(data_dir, ground_truth):
    from batch_platform.extract.factory import build_extract_assets
    from batch_platform.registry import load_registry

    sources = ("orders/order_events", "customers/customers")
    extracts = [s for s in load_registry(load_manifest()) if s.path in sources]
    days = landscape_days()[:3]
    with demo_apis(data_dir):
        result = dg.materialize(
            build_extract_assets(extracts, platform_days),
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
    assert result.success
    found = _per_partition([result])
    for source in sources:
        per_day = found[f"raw/{source}"]
        assert set(per_day) == set(days)
        truth = ground_truth["sources"][source]
        shown = [per_day[day].metadata["rows_loaded"].value for day in days]
        assert shown == [expected_counts(truth, day)[0] for day in days], source
        assert [per_day[day].metadata[ROW_COUNT].value for day in days] == shown


def test_an_extract_of_a_day_with_no_source_rows_materialises_an_empty_partition(data_dir):
    from batch_platform.extract.factory import build_extract_assets
    from batch_platform.registry import load_registry

    quiet_day = "2026-02-20"  # before the landscape starts: the service has no rows that day
    (customers,) = [s for s in load_registry(load_manifest()) if s.path == "customers/customers"]
    result = dg.materialize(
        build_extract_assets([customers], platform_days), partition_key=quiet_day
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    assert event.partition == quiet_day
    assert metadata[ROW_COUNT].value == 0 and metadata["rows_read"].value == 0
    assert "0 rows" in metadata["note"].value
    lake = data_dir / "lake" / "raw" / "customers" / "customers" / f"dt={quiet_day}"
    assert (lake / "data.parquet").is_file()
