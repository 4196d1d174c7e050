-- Question: how much gross merchandise value (GMV) does each front end (mobile app, web,
-- mini-program) bring, from how much traffic, at what conversion rate and average order value?
select
    channel,
    min(activity_date) as first_day,
    max(activity_date) as last_day,
    sum(sessions) as sessions,
    sum(orders) as orders,
    sum(cancelled_orders) as cancelled_orders,
    sum(gmv) as gmv,
    round(100 * sum(gmv) / sum(sum(gmv)) over (), 1) as gmv_share_pct,
    round(sum(orders) / nullif(sum(sessions), 0), 4) as conversion_rate,
    cast(sum(gmv) / nullif(sum(orders), 0) as decimal(14, 2)) as average_order_value
from channel.channel_daily_kpis
group by channel
order by gmv desc
