{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('event_date')
    )
}}

-- One row per order state change, typed and cleaned. The extract already de-duplicated event
-- ids within a day and quarantined what broke the contract; this model keeps the window.
with source as (
    select * from {{ source('orders', 'order_events') }}
    where {{ in_partition_window('dt') }}
)

select
    event_id,
    event_type,
    occurred_at,
    cast(dt as date) as event_date,
    order_id,
    customer_id,
    channel,
    nullif(trim(promotion_code), '') as promotion_code,
    upper(currency) as currency,
    total_amount,
    discount_amount,
    items
from source
