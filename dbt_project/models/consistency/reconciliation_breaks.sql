{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_partition_window('break_date') }}",
    )
}}

-- Broken sagas between services. There are no distributed transactions between orders,
-- payments, shipping and inventory, so the platform detects where they disagree: one row per
-- break, on the day the order was placed (or the stock moved).
with orders as (
    select * from {{ ref('fct_orders') }}
    where {{ in_partition_window('order_date') }}
),

order_breaks as (
    select order_date as break_date, 'paid_without_capture' as break_type, order_id,
        cast(null as varchar) as movement_id, total_amount as expected_amount,
        captured_amount as actual_amount,
        'orders marked the order paid; payments captured nothing' as detail
    from orders
    where paid_at is not null and captured_at is null

    union all

    select order_date, 'amount_mismatch', order_id, null, total_amount, captured_amount,
        'captured amount differs from the order total'
    from orders
    where captured_at is not null and captured_amount <> total_amount

    union all

    select order_date, 'shipment_for_unpaid_or_cancelled', order_id, null, total_amount,
        captured_amount,
        case when cancelled_at is not null then 'shipped although cancelled'
            else 'shipped although never paid' end
    from orders
    where (dispatched_at is not null or delivered_at is not null)
        and (paid_at is null or cancelled_at is not null)
),

movement_breaks as (
    select movements.movement_date as break_date, 'movement_without_order' as break_type,
        movements.order_id, movements.movement_id, null as expected_amount,
        null as actual_amount, 'a sale moved stock for an order the orders service does not know'
    from {{ ref('stg_inventory__stock_movements') }} as movements
    where movements.reason = 'sale'
        and {{ in_partition_window('movements.movement_date') }}
        and not exists (
            select 1 from {{ ref('stg_orders__order_events') }} as known
            where known.order_id = movements.order_id
        )
)

select * from order_breaks
union all
select * from movement_breaks
