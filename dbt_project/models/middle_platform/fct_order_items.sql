{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_partition_window('order_date') }}",
    )
}}

-- One row per order line, from the order as it was placed.
with placed as (
    select order_id, channel, event_date as order_date, items
    from {{ ref('stg_orders__order_events') }}
    where event_type = 'order_placed' and {{ in_partition_window('event_date') }}
    qualify row_number() over (partition by order_id order by occurred_at, event_id) = 1
),

lines as (
    -- Unnesting a list has no cross-database dbt macro; this is the one DuckDB-specific step.
    select order_id, channel, order_date, unnest(items) as item,
        generate_subscripts(items, 1) as line_number
    from placed
)

select
    order_id,
    line_number,
    order_date,
    channel,
    item.product_id as product_id,
    item.quantity as quantity,
    item.unit_price as unit_price,
    cast(item.quantity * item.unit_price as decimal(14, 2)) as line_amount
from lines
