"""Cross-cutting policy: how fresh each layer must be and when an asset updates by itself.

Applied once, in `definitions.py`, to every asset by its group, so no asset definition carries
its own copy. The numbers are per layer because each layer waits on the one below it:

| layer (group)                        | warn | fail | updates when                      |
| ------------------------------------ | ---- | ---- | --------------------------------- |
| extracts (`infrastructure`, raw/…)   | 26 h | 50 h | new data (sensor); stale again    |
| staging (`infrastructure`, stg_…)    | 27 h | 51 h | extracts ran (sensor); a model    |
| `middle_platform`                    | 28 h | 52 h | it reads was rebuilt by hand;     |
| `scenario`, `channel`, `consistency` | 29 h | 53 h | stale again                       |
| `analytics` (published snapshot)     | 30 h | 54 h |                                   |

A daily batch is due once a day; "warn" leaves two hours for the chain above to catch up after
the extracts, "fail" means a whole day was missed. Any asset whose freshness warns or fails is
requested again for its latest day.
"""

from datetime import timedelta

import dagster as dg

from batch_platform.sensors import DOWNSTREAM, TRIGGER_TAG
from batch_platform.transform.dbt_assets import SETTLEMENT_TAG

# (warn, fail) hours per layer
FRESHNESS_HOURS: dict[str, tuple[int, int]] = {
    "raw": (26, 50),
    "staging": (27, 51),
    "middle_platform": (28, 52),
    "scenario": (29, 53),
    "channel": (29, 53),
    "consistency": (29, 53),
    "analytics": (30, 54),
}


def layer_of(spec: dg.AssetSpec) -> str:
    """The layer an asset belongs to: its `layer` tag (extracts, dbt models) or its group."""
    return spec.tags.get("layer") or spec.group_name or "analytics"


def freshness_policy(layer: str) -> dg.FreshnessPolicy:
    warn, fail = FRESHNESS_HOURS.get(layer, FRESHNESS_HOURS["analytics"])
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=fail), warn_window=timedelta(hours=warn)
    )


def stale_again() -> dg.AutomationCondition:
    """Request the latest day again when the asset's freshness warns or fails.

    On a partitioned asset the freshness state applies to every partition, so it is combined
    with the latest time window: one request, for today's partition, not one per day of history.
    """
    return (
        (
            (dg.AutomationCondition.freshness_warned() | dg.AutomationCondition.freshness_failed())
            & dg.AutomationCondition.in_latest_time_window()
            & ~dg.AutomationCondition.in_progress()
        )
        .since_last_handled()
        .with_label("stale: freshness warned or failed")
    )


def updated_by_hand() -> dg.AutomationCondition:
    """A model this partition reads updated, other than by the sensors' runs: any day, not only
    today, and not extracts.

    After any extract the `downstream_sensor` requests everything above it, for every day the
    change reaches, in one run (automation would climb the graph one layer per tick, a run
    each). So updates made by extract runs (`raw/...`) and by the downstream sensor's runs
    (tagged `batch_platform/trigger=downstream`) are left alone, as are updates made by any run
    that also built this asset (Dagster's `executed_with_root_target`). What is left is a person
    rebuilding a model by hand.

    The sensor's runs are recognised per partition by `all_new_updates_have_run_tags` (the new
    materialisations of each day and the runs that wrote them). Dagster's `executed_with_tags`
    and `executed_with_root_target` look only at the asset's single latest materialisation, so
    in a run over several days every day but the last would look "by hand" and be rebuilt
    again. `executed_with_root_target` is kept for hand runs that built this asset too: for the
    other days of such a range the asset's own update (the `since` reset) clears the request.
    """
    return (
        dg.AutomationCondition.any_deps_match(
            (
                dg.AutomationCondition.newly_updated()
                & ~dg.AutomationCondition.executed_with_root_target()
                & ~dg.AutomationCondition.all_new_updates_have_run_tags(
                    tag_values={TRIGGER_TAG: DOWNSTREAM}
                )
            ).with_label("updated by hand")
            | dg.AutomationCondition.will_be_requested()
        )
        .ignore(dg.AssetSelection.key_prefixes("raw"))
        .with_label("a model it reads was updated by hand")
    )


def upstream_updated() -> dg.AutomationCondition:
    """Update a partition after a model it reads was updated by hand (`updated_by_hand`).

    `eager()` looks at the latest day only; late events re-open old days, so the condition here
    covers every partition whose dependencies changed since it was last requested or updated.
    """
    return (
        updated_by_hand().since(
            dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
        )
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("an upstream partition updated")


def inputs_settled() -> dg.AutomationCondition:
    """No model this partition reads is about to be rebuilt by a later run.

    A model whose own inputs updated since it was last requested will run again; reading it
    now would compute from its old contents (a mart would count orders as paid without their
    payment, because the order fact was built before the day's payments arrived) and be redone
    later, or fail a reconciliation check meanwhile. So wait, unless that model is requested in
    this same tick: the tick's requests form one backfill, which runs in dependency order.
    """
    rebuild_pending = (
        updated_by_hand().since(
            dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
        )
        & ~dg.AutomationCondition.will_be_requested()
    )
    return ~dg.AutomationCondition.any_deps_match(rebuild_pending).with_label("inputs settled")


def upstream_days_exist() -> dg.AutomationCondition:
    """Every day this partition reads from a model upstream exists (or is built in this tick).

    Keeps a mart from running before the table it joins was ever built. Extracts are ignored:
    a day a source had nothing to say is a legitimate gap, not a missing input.
    """
    return ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested()
    ).ignore(dg.AssetSelection.key_prefixes("raw")).with_label("upstream days exist")


def apply_policies(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Freshness for every asset; automation for everything above the extracts.

    Models that read a settlement window around their day (order lifecycle) look at days that
    may not have happened yet, so they cannot wait for all their upstream days to exist; their
    staging inputs are built in the same dbt run. Staging reads only extracts. Every other
    model (marts, dimensions, the snapshot) waits until what it reads exists. Everything above
    staging also waits while a model it reads is about to be rebuilt (`inputs_settled`).
    """
    layer = layer_of(spec)
    if layer == "raw":
        condition = stale_again()
    elif layer == "staging":
        condition = upstream_updated() | stale_again()
    elif SETTLEMENT_TAG in spec.tags:
        condition = (upstream_updated() & inputs_settled()) | stale_again()
    else:
        condition = (upstream_updated() & upstream_days_exist() & inputs_settled()) | stale_again()
    return spec.replace_attributes(
        freshness_policy=freshness_policy(layer), automation_condition=condition
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "platform_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Evaluates every asset's automation condition: models update after their upstream "
        "partitions update, and stale assets are requested again. Running by default."
    ),
)
