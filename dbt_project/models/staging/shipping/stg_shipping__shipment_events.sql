{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('event_date')
    )
}}

-- One row per shipment state change from the shipping service, partitioned by event day.
select
    event_id,
    event_type,
    occurred_at,
    cast(dt as date) as event_date,
    shipment_id,
    order_id,
    carrier,
    units
from {{ source('shipping', 'shipment_events') }}
where {{ in_partition_window('dt') }}
