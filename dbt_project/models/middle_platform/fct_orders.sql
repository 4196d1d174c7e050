{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
        pre_hook="{{ delete_partition_window('order_date') }}",
    )
}}

-- The order lifecycle fact: one row per order, with what three services say happened to it
-- (orders: placed/paid/cancelled, payments: captured/failed/refunded, shipping: dispatched/
-- delivered). No service can give this picture alone.
--
-- An order's day is the day it was placed. While its `order_placed` event is still in flight
-- (late delivery) the order is kept on the day of its first known event, with
-- `placement_known = false`; when the event lands, the re-run of that day moves the row (the
-- `order_id` key replaces it wherever it was).
with order_events as (
    select * from {{ ref('stg_orders__order_events') }}
    where {{ in_settlement_window('event_date') }}
),

orders as (
    select
        order_id,
        min(case when event_type = 'order_placed' then occurred_at end) as placed_at,
        min(occurred_at) as first_event_at,
        min(case when event_type = 'order_paid' then occurred_at end) as paid_at,
        min(case when event_type = 'order_cancelled' then occurred_at end) as cancelled_at
    from order_events
    group by order_id
),

order_state as (
    -- Every event carries the whole order; prefer the state as placed.
    select order_id, customer_id, channel, promotion_code, currency, total_amount, discount_amount
    from order_events
    qualify row_number() over (
        partition by order_id
        order by case when event_type = 'order_placed' then 0 else 1 end, occurred_at, event_id
    ) = 1
),

in_window as (
    select
        orders.*,
        cast(coalesce(orders.placed_at, orders.first_event_at) as date) as order_date
    from orders
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

shipments as (
    select
        order_id,
        min(case when event_type = 'shipment_dispatched' then occurred_at end) as dispatched_at,
        min(case when event_type = 'shipment_delivered' then occurred_at end) as delivered_at,
        sum(case when event_type = 'shipment_dispatched' then units else 0 end) as units_shipped
    from {{ ref('stg_shipping__shipment_events') }}
    where {{ in_settlement_window('event_date') }}
    group by order_id
),

items as (
    select order_id, sum(quantity) as units_ordered, count(*) as line_count
    from {{ ref('fct_order_items') }}
    where {{ in_partition_window('order_date') }}
    group by order_id
)

select
    in_window.order_id,
    in_window.order_date,
    in_window.placed_at is not null as placement_known,
    in_window.placed_at,
    order_state.customer_id,
    order_state.channel,
    order_state.promotion_code,
    order_state.currency,
    order_state.total_amount,
    order_state.discount_amount,
    coalesce(items.line_count, 0) as line_count,
    coalesce(items.units_ordered, 0) as units_ordered,
    in_window.paid_at,
    in_window.cancelled_at,
    payments.captured_at,
    coalesce(payments.captured_amount, 0) as captured_amount,
    coalesce(payments.refunded_amount, 0) as refunded_amount,
    shipments.dispatched_at,
    shipments.delivered_at,
    coalesce(shipments.units_shipped, 0) as units_shipped,
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
        when in_window.cancelled_at is not null then 'cancelled'
        when shipments.delivered_at is not null then 'delivered'
        when shipments.dispatched_at is not null then 'shipped'
        when in_window.paid_at is not null then 'paid'
        else 'placed'
    end as status
from in_window
join order_state on order_state.order_id = in_window.order_id
left join payments on payments.order_id = in_window.order_id
left join shipments on shipments.order_id = in_window.order_id
left join items on items.order_id = in_window.order_id
where {{ in_partition_window('in_window.order_date') }}
