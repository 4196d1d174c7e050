-- Question: where do the services disagree? Per day: the orders checked, the broken sagas by
-- type (paid without capture, amount mismatch, shipment for an unpaid or cancelled order,
-- stock moved for an unknown order), the break rate and the money at stake.
with at_stake as (
    select break_date, sum(abs(coalesce(expected_amount, 0) - coalesce(actual_amount, 0))) as amount
    from consistency.reconciliation_breaks
    group by break_date
)

select
    summary.summary_date,
    summary.orders_checked,
    summary.breaks,
    summary.paid_without_capture,
    summary.amount_mismatch,
    summary.shipment_for_unpaid_or_cancelled,
    summary.movement_without_order,
    round(summary.break_rate, 4) as break_rate,
    coalesce(at_stake.amount, 0) as amount_at_stake
from consistency.reconciliation_daily_summary as summary
left join at_stake on at_stake.break_date = summary.summary_date
order by summary.summary_date
