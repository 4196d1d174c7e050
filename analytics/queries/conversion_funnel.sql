-- Question: on each channel, how many sessions turn into an order, and how many of those orders
-- are then paid, captured by the payments service, shipped and delivered (or cancelled)?
with traffic as (
    select channel, sum(sessions) as sessions
    from channel.channel_daily_kpis
    group by channel
),

orders as (
    select
        channel,
        count(*) as orders,
        count(paid_at) as paid,
        count(captured_at) as captured,
        count(dispatched_at) as shipped,
        count(delivered_at) as delivered,
        count(cancelled_at) as cancelled
    from middle_platform.fct_orders
    group by channel
)

select
    orders.channel,
    traffic.sessions,
    orders.orders,
    orders.paid,
    orders.captured,
    orders.shipped,
    orders.delivered,
    orders.cancelled,
    round(orders.orders / nullif(traffic.sessions, 0), 4) as session_to_order,
    round(orders.paid / orders.orders, 4) as order_to_paid,
    round(orders.shipped / nullif(orders.paid, 0), 4) as paid_to_shipped,
    round(orders.delivered / nullif(orders.shipped, 0), 4) as shipped_to_delivered
from orders
left join traffic on traffic.channel = orders.channel
order by orders.orders desc
