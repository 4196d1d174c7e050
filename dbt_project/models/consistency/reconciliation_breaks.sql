{{ config(**partition_window_config('break_date')) }}

-- Broken sagas between services. There are no distributed transactions between orders,
-- payments, shipping and inventory, so the platform detects where they disagree: one row per
-- break, on the order's day (or the day the stock moved).
--
-- Every kind is judged the same way: on the events that have arrived, within `settlement_days`
-- of the window, an event still in flight counts as not happened. So an order whose order
-- events have not arrived yet is "not paid" and "unknown" to the orders service: a shipment
-- for it is `shipment_for_unpaid_or_cancelled`, a sale movement for it is
-- `movement_without_order`. Such an order has no `fct_orders` row; its day is the day of its
-- first payment or shipment event. The break disappears on the re-run after the missing events
-- land (the settlement-window partition mapping re-opens these days).
with orders as (
    select * from {{ ref('fct_orders') }}
    where {{ in_partition_window('order_date') }}
),

reported_orders as (
    -- Orders the orders service has reported at least one event for.
    select distinct order_id from {{ ref('stg_orders__order_events') }}
    where {{ in_settlement_window('event_date') }}
),

unreported_orders as (
    -- Orders that payments or shipping reported and the orders service has not (yet).
    select
        events.order_id,
        cast(min(events.occurred_at) as date) as order_date,
        sum(events.captured_amount) as captured_amount,
        sum(events.shipment_events) as shipment_events
    from (
        select order_id, occurred_at,
            case when event_type = 'payment_captured' then amount else 0 end as captured_amount,
            0 as shipment_events
        from {{ ref('stg_payments__payment_events') }}
        where {{ in_settlement_window('event_date') }}
        union all
        select order_id, occurred_at, 0, 1
        from {{ ref('stg_shipping__shipment_events') }}
        where {{ in_settlement_window('event_date') }}
    ) as events
    left join reported_orders on reported_orders.order_id = events.order_id
    where reported_orders.order_id is null
    group by events.order_id
),

order_breaks as (
    select order_date as break_date, 'paid_without_capture' as break_type, order_id,
        cast(null as {{ contract_type('varchar') }}) as movement_id, total_amount as expected_amount,
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

    union all

    select order_date, 'shipment_for_unpaid_or_cancelled', order_id, null, null,
        captured_amount, 'shipped although the orders service has not reported the order'
    from unreported_orders
    where shipment_events > 0 and {{ in_partition_window('order_date') }}
),

movement_breaks as (
    select movements.movement_date as break_date, 'movement_without_order' as break_type,
        movements.order_id, movements.movement_id, null as expected_amount,
        null as actual_amount, 'a sale moved stock for an order the orders service does not know'
    from {{ ref('stg_inventory__stock_movements') }} as movements
    left join reported_orders on reported_orders.order_id = movements.order_id
    where movements.reason = 'sale'
        and {{ in_partition_window('movements.movement_date') }}
        and reported_orders.order_id is null
)

select * from order_breaks
union all
select * from movement_breaks
