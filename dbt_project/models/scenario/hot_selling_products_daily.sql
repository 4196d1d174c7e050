{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_partition_window('order_date') }}",
    )
}}

-- The day's top products by units sold on each channel, with how many days their stock lasts
-- at the recent sales velocity (all channels, trailing `velocity_days`). Product names and
-- categories are current state: analysts join middle_platform.dim_products (a day's partition
-- must not freeze today's catalog, or it would differ from a full rebuild).
with daily_units as (
    select order_date, channel, product_id, sum(quantity) as units_sold, sum(line_amount) as revenue
    from {{ ref('fct_order_items') }}
    where {{ in_partition_window('order_date') }}
    group by order_date, channel, product_id
),

ranked as (
    select *, row_number() over (
        partition by order_date, channel order by units_sold desc, revenue desc, product_id
    ) as sales_rank
    from daily_units
),

velocity as (
    select days.order_date, items.product_id,
        cast(sum(items.quantity) as double) / {{ var('velocity_days') }} as units_per_day
    from (select distinct order_date from ranked) as days
    join {{ ref('fct_order_items') }} as items
        on items.order_date > {{ dbt.dateadd('day', -var('velocity_days'), 'days.order_date') }}
        and items.order_date <= days.order_date
    group by days.order_date, items.product_id
),

stock as (
    -- Stock at the end of each day: the latest closing position on or before that day.
    select days.order_date, inventory.product_id, inventory.closing_on_hand
    from (select distinct order_date from ranked) as days
    join {{ ref('fct_inventory_daily') }} as inventory
        on inventory.movement_date <= days.order_date
    qualify row_number() over (
        partition by days.order_date, inventory.product_id order by inventory.movement_date desc
    ) = 1
)

select
    ranked.order_date,
    ranked.channel,
    ranked.sales_rank,
    ranked.product_id,
    ranked.units_sold,
    ranked.revenue,
    stock.closing_on_hand,
    velocity.units_per_day,
    case when velocity.units_per_day > 0
        then cast(stock.closing_on_hand / velocity.units_per_day as decimal(10, 1))
    end as days_of_stock_left
from ranked
left join velocity
    on velocity.order_date = ranked.order_date and velocity.product_id = ranked.product_id
left join stock on stock.order_date = ranked.order_date and stock.product_id = ranked.product_id
where ranked.sales_rank <= {{ var('top_products') }}
