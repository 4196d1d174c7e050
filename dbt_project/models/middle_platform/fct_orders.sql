{{ config(**partition_window_config('order_date', unique_key='order_id')) }}

-- The order lifecycle fact: one row per order, with what three services say happened to it
-- (orders: placed/paid/cancelled, payments: captured/failed/refunded, shipping: dispatched/
-- delivered). No service can give this picture alone.
--
-- An order's day is the day it was placed. While its `order_placed` event is still in flight
-- (late delivery) the order is kept on the day of its first known event, with
-- `placement_known = false`, and with the state and lines that event carries (every order event
-- carries the whole order); when `order_placed` lands, the re-run of that day moves the row
-- (the `order_id` key replaces it wherever it was). `fct_order_items` follows the same rule.
with order_events as (
    select * from {{ ref('stg_orders__order_events') }}
    where {{ in_settlement_window('event_date') }}
),

lifecycle as (
    select
        order_id,
        min(case when event_type = 'order_paid' then occurred_at end) as paid_at,
        min(case when event_type = 'order_cancelled' then occurred_at end) as cancelled_at
    from order_events
    group by order_id
),

in_window as (
    -- The order's state, day and lines as reported so far (macros/order_state.sql).
    select * from ({{ order_state('order_events') }}) as orders
    where {{ in_partition_window('order_date') }}
),

line_totals as (
    -- The lines `fct_order_items` lists, counted from the same event. Not read from that model:
    -- this model's settlement-window partition mapping would then re-open 15 days of orders
    -- for every day of items rebuilt.
    select order_id, count(*) as line_count, sum(item.quantity) as units_ordered
    from (select order_id, {{ list_elements('items', 'item') }} from in_window) as lines
    group by order_id
),

payments as (
    select
        order_id,
        min(case when event_type = 'payment_captured' then occurred_at end) as captured_at,
        sum(case when event_type = 'payment_captured' then amount else 0 end) as captured_amount,
        sum(case when event_type = 'payment_refunded' then amount else 0 end) as refunded_amount,
        sum(case when event_type = 'payment_failed' then 1 else 0 end) as failed_payments
    from {{ ref('stg_payments__payment_events') }}
    where {{ in_settlement_window('event_date') }}
    group by order_id
),

shipment_events as (
    select * from {{ ref('stg_shipping__shipment_events') }}
    where {{ in_settlement_window('event_date') }}
),

shipped_units as (
    -- Every shipment event carries the shipment's units: each shipment counts once, with the
    -- units of its first event that arrived (a delivery whose dispatch is still in flight too).
    select order_id, sum(units) as units_shipped
    from (
        select order_id, units
        from shipment_events
        qualify row_number() over (partition by shipment_id order by occurred_at, event_id) = 1
    ) as first_events
    group by order_id
),

shipments as (
    select
        order_id,
        min(case when event_type = 'shipment_dispatched' then occurred_at end) as dispatched_at,
        min(case when event_type = 'shipment_delivered' then occurred_at end) as delivered_at
    from shipment_events
    group by order_id
)

select
    in_window.order_id,
    in_window.order_date,
    in_window.placement_known,
    in_window.placed_at,
    in_window.customer_id,
    in_window.channel,
    in_window.promotion_code,
    in_window.currency,
    in_window.total_amount,
    in_window.discount_amount,
    coalesce(line_totals.line_count, 0) as line_count,
    coalesce(line_totals.units_ordered, 0) as units_ordered,
    lifecycle.paid_at,
    lifecycle.cancelled_at,
    payments.captured_at,
    coalesce(payments.captured_amount, 0) as captured_amount,
    coalesce(payments.refunded_amount, 0) as refunded_amount,
    shipments.dispatched_at,
    shipments.delivered_at,
    coalesce(shipped_units.units_shipped, 0) as units_shipped,
    case
        when payments.captured_at is not null then 'captured'
        when coalesce(payments.failed_payments, 0) > 0 then 'failed'
        else 'none'
    end as payment_status,
    case
        when shipments.delivered_at is not null then 'delivered'
        when shipments.dispatched_at is not null then 'dispatched'
        else 'none'
    end as shipment_status,
    case
        when lifecycle.cancelled_at is not null then 'cancelled'
        when shipments.delivered_at is not null then 'delivered'
        when shipments.dispatched_at is not null then 'shipped'
        when lifecycle.paid_at is not null then 'paid'
        else 'placed'
    end as status
from in_window
join lifecycle on lifecycle.order_id = in_window.order_id
left join payments on payments.order_id = in_window.order_id
left join shipments on shipments.order_id = in_window.order_id
left join shipped_units on shipped_units.order_id = in_window.order_id
left join line_totals on line_totals.order_id = in_window.order_id
