{{ config(**partition_window_config('payment_date', unique_key='payment_id')) }}

-- One row per payment, on the day of its first event, with its outcome. Events are read from
-- a settlement period before the window too, so a payment that began earlier is not mistaken
-- for one that began inside it. A payment moves to an earlier day when its first event lands
-- after a later day was built (days built out of order, a late event): the unique key takes
-- it off the later day in the same transaction, so there is always one row per payment.
with events as (
    select * from {{ ref('stg_payments__payment_events') }}
    where {{ in_settlement_window('event_date') }}
),

payments as (
    select
        payment_id,
        min(order_id) as order_id,
        min(event_date) as payment_date,
        min(method) as method,
        min(currency) as currency,
        min(occurred_at) as first_event_at,
        max(case when event_type = 'payment_captured' then amount end) as captured_amount,
        max(case when event_type = 'payment_refunded' then amount end) as refunded_amount,
        max(case when event_type = 'payment_captured' then occurred_at end) as captured_at,
        max(case when event_type = 'payment_failed' then occurred_at end) as failed_at
    from events
    group by payment_id
)

select
    *,
    case
        when refunded_amount is not null then 'refunded'
        when captured_at is not null then 'captured'
        when failed_at is not null then 'failed'
        else 'pending'
    end as status
from payments
where {{ in_partition_window('payment_date') }}
