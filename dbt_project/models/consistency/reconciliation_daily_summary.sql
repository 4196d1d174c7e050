{{ config(**partition_window_config('summary_date')) }}

-- Per day: how many orders were checked, how many breaks of each type, and the break rate the
-- reconciliation checks hold against their warn / error thresholds.
with orders as (
    select order_date as summary_date, count(*) as orders_checked
    from {{ ref('fct_orders') }}
    where {{ in_partition_window('order_date') }}
    group by order_date
),

breaks as (
    select break_date as summary_date,
        sum(case when break_type = 'paid_without_capture' then 1 else 0 end) as paid_without_capture,
        sum(case when break_type = 'amount_mismatch' then 1 else 0 end) as amount_mismatch,
        sum(case when break_type = 'shipment_for_unpaid_or_cancelled' then 1 else 0 end)
            as shipment_for_unpaid_or_cancelled,
        sum(case when break_type = 'movement_without_order' then 1 else 0 end)
            as movement_without_order,
        count(*) as breaks
    from {{ ref('reconciliation_breaks') }}
    where {{ in_partition_window('break_date') }}
    group by break_date
)

select
    coalesce(orders.summary_date, breaks.summary_date) as summary_date,
    coalesce(orders.orders_checked, 0) as orders_checked,
    coalesce(breaks.paid_without_capture, 0) as paid_without_capture,
    coalesce(breaks.amount_mismatch, 0) as amount_mismatch,
    coalesce(breaks.shipment_for_unpaid_or_cancelled, 0) as shipment_for_unpaid_or_cancelled,
    coalesce(breaks.movement_without_order, 0) as movement_without_order,
    coalesce(breaks.breaks, 0) as breaks,
    {{ safe_ratio('coalesce(breaks.breaks, 0)', 'orders.orders_checked') }} as break_rate
from orders
full outer join breaks on breaks.summary_date = orders.summary_date
