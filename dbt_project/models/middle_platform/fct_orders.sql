{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_partition_window('order_date') }}",
    )
}}

-- The order lifecycle fact: one row per order placed in the window, with what happened to it
-- since in three services (orders: paid/cancelled, payments: captured/failed/refunded,
-- shipping: dispatched/delivered). No service can give this picture alone.
with order_events as (
    select * from {{ ref('stg_orders__order_events') }}
    where {{ in_settlement_window('event_date') }}
),

placed as (
    select
        order_id, customer_id, channel, promotion_code, currency, total_amount, discount_amount,
        occurred_at as placed_at, event_date as order_date
    from order_events
    where event_type = 'order_placed' and {{ in_partition_window('event_date') }}
    qualify row_number() over (partition by order_id order by occurred_at, event_id) = 1
),

state_changes as (
    select
        order_id,
        min(case when event_type = 'order_paid' then occurred_at end) as paid_at,
        min(case when event_type = 'order_cancelled' then occurred_at end) as cancelled_at
    from order_events
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
    placed.order_id,
    placed.order_date,
    placed.placed_at,
    placed.customer_id,
    placed.channel,
    placed.promotion_code,
    placed.currency,
    placed.total_amount,
    placed.discount_amount,
    coalesce(items.line_count, 0) as line_count,
    coalesce(items.units_ordered, 0) as units_ordered,
    state_changes.paid_at,
    state_changes.cancelled_at,
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
        when state_changes.cancelled_at is not null then 'cancelled'
        when shipments.delivered_at is not null then 'delivered'
        when shipments.dispatched_at is not null then 'shipped'
        when state_changes.paid_at is not null then 'paid'
        else 'placed'
    end as status
from placed
left join state_changes on state_changes.order_id = placed.order_id
left join payments on payments.order_id = placed.order_id
left join shipments on shipments.order_id = placed.order_id
left join items on items.order_id = placed.order_id
