"""Every dbt model's materialisation carries numeric table figures the UI plots over time."""

from datetime import date, datetime

import dagster as dg
from support import LANDSCAPE_START, landscape_days, warehouse

from batch_platform.transform.table_metrics import ROW_COUNT, model_queries, quoted_table

SUMMARY = {"name": "reconciliation_daily_summary", "schema": "consistency", "alias": None}


def test_identifiers_are_quoted_and_window_days_are_bound_never_formatted():
    hostile = {"name": "x", "schema": 'a"; drop table t; --', "alias": "b"}
    assert quoted_table(hostile) == '"a""; drop table t; --"."b"'

    window = (date(2026, 3, 1), date(2026, 3, 3))
    queries = model_queries(SUMMARY, window)
    assert [names for names, _, _ in queries] == [
        (ROW_COUNT,),
        ("break_rate", "breaks", "orders_checked"),
    ]
    _, sql, params = queries[1]
    assert params == [date(2026, 3, 1), date(2026, 3, 3)]
    assert "2026" not in sql and sql.count("?") == 2


def test_a_windowed_figure_is_not_asked_for_without_a_window():
    assert [names for names, _, _ in model_queries(SUMMARY, None)] == [(ROW_COUNT,)]


def _materializations(built_pipeline) -> dict[str, dg.AssetMaterialization]:
    found = {}
    for result in built_pipeline.dbt_runs:
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            found[materialization.asset_key.to_user_string()] = materialization
    return found


def test_every_model_reports_its_rows_and_the_summary_its_break_rate(built_pipeline):
    materializations = _materializations(built_pipeline)
    days = landscape_days()
    first = datetime.fromisoformat(days[0]).date()
    assert first == LANDSCAPE_START
    with warehouse(built_pipeline.data) as con:
        for key, materialization in materializations.items():
            if key.startswith("raw/"):
                continue
            table = ".".join(key.split("/"))
            (rows,) = con.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
            assert materialization.metadata[ROW_COUNT].value == rows, key

        summary = materializations["consistency/reconciliation_daily_summary"].metadata
        rate, breaks = con.execute(
            "select max(break_rate), sum(breaks) from consistency.reconciliation_daily_summary"
        ).fetchone()
        (listed,) = con.execute("select count(*) from consistency.reconciliation_breaks").fetchone()
    assert breaks == listed > 0
    assert summary["break_rate"].value == float(rate) > 0
    assert summary["breaks"].value == breaks
    quarantine = materializations["consistency/quarantine_daily_summary"].metadata
    assert quarantine["quarantined_records"].value > 0
