{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('event_date')
    )
}}

-- One row per payment outcome from the payments service, typed, partitioned by event day.
select
    event_id,
    event_type,
    occurred_at,
    cast(dt as date) as event_date,
    payment_id,
    order_id,
    amount,
    upper(currency) as currency,
    method
from {{ source('payments', 'payment_events') }}
where {{ in_partition_window('dt') }}
