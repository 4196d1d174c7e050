{{ config(**partition_window_config('activity_date')) }}

-- Per front end (mobile, web, mini_program) and day: traffic, orders, conversion, GMV, AOV.
with sessions as (
    select session_date as activity_date, channel, count(*) as sessions,
        count(order_id) as sessions_with_order
    from {{ ref('stg_clickstream__sessions') }}
    where {{ in_partition_window('session_date') }}
    group by session_date, channel
),

orders as (
    select order_date as activity_date, channel, count(*) as orders,
        sum(total_amount) as gmv, sum(discount_amount) as discount,
        sum(case when status = 'cancelled' then 1 else 0 end) as cancelled_orders
    from {{ ref('fct_orders') }}
    where placement_known and {{ in_partition_window('order_date') }}
    group by order_date, channel
)

select
    coalesce(sessions.activity_date, orders.activity_date) as activity_date,
    coalesce(sessions.channel, orders.channel) as channel,
    coalesce(sessions.sessions, 0) as sessions,
    coalesce(orders.orders, 0) as orders,
    coalesce(orders.cancelled_orders, 0) as cancelled_orders,
    coalesce(orders.gmv, 0) as gmv,
    coalesce(orders.discount, 0) as discount,
    {{ safe_ratio('coalesce(orders.orders, 0)', 'coalesce(sessions.sessions, 0)') }} as conversion_rate,
    cast(orders.gmv / nullif(orders.orders, 0) as decimal(14, 2)) as average_order_value
from sessions
full outer join orders
    on orders.activity_date = sessions.activity_date and orders.channel = sessions.channel
