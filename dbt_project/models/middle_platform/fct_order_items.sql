{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('order_date', unique_key='order_id')
    )
}}

-- One row per order line, on the order's day as `fct_orders` places it (the `order_state`
-- macro). Every order event carries the whole order, so the lines come from the `order_placed`
-- event, or, while that event is still in flight, from the order's first event that has
-- arrived (`placement_known = false`). When `order_placed` lands, the re-run of its day moves
-- the lines there (the `order_id` key replaces them wherever they were), as in `fct_orders`.
with order_events as (
    select * from {{ ref('stg_orders__order_events') }}
    where {{ in_settlement_window('event_date') }}
),

orders as (
    {{ order_state('order_events') }}
),

lines as (
    -- Unnesting a list has no cross-database dbt macro: `list_elements` (macros/dialect.sql).
    select order_id, channel, order_date, placement_known,
        {{ list_elements('items', 'item', 'line_number') }}
    from orders
    where {{ in_partition_window('order_date') }}
)

select
    order_id,
    line_number,
    order_date,
    channel,
    item.product_id as product_id,
    item.quantity as quantity,
    item.unit_price as unit_price,
    cast(item.quantity * item.unit_price as decimal(14, 2)) as line_amount,
    placement_known
from lines
