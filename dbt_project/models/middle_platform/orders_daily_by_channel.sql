{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_partition_window('order_date') }}",
    )
}}

-- Orders placed and gross merchandise value per day and channel. An order counts on the day it
-- was placed; a re-delivered event is one event (the extract de-duplicates event ids).
with placed as (
    select distinct order_id, channel, event_date, total_amount, discount_amount
    from {{ ref('stg_orders__order_events') }}
    where event_type = 'order_placed' and {{ in_partition_window('event_date') }}
)

select
    event_date as order_date,
    channel,
    count(*) as orders,
    sum(total_amount) as gmv,
    sum(discount_amount) as discount
from placed
group by event_date, channel
