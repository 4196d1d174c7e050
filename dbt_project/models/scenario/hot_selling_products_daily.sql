{{ config(**partition_window_config('order_date')) }}

-- The day's top products by units sold on each channel, with how many days their stock lasts
-- at the recent sales velocity (all channels, trailing `velocity_days`). Like the channel KPIs,
-- it counts the lines of orders whose placement is known (an order still missing its
-- `order_placed` event joins the day it was placed once that event lands). The figures are
-- exact decimals, rounded half up: `round_half_up_ratio` (macros/exact_ratio.sql).
-- Product names and categories are current state: analysts join middle_platform.dim_products
-- (a day's partition must not freeze today's catalog, or it would differ from a full rebuild).
with daily_units as (
    select order_date, channel, product_id, sum(quantity) as units_sold, sum(line_amount) as revenue
    from {{ ref('fct_order_items') }}
    where placement_known and {{ in_partition_window('order_date') }}
    group by order_date, channel, product_id
),

ranked as (
    select *, row_number() over (
        partition by order_date, channel order by units_sold desc, revenue desc, product_id
    ) as sales_rank
    from daily_units
),

velocity as (
    -- Units sold over the trailing `velocity_days` (the day itself included), all channels.
    select days.order_date, items.product_id, sum(items.quantity) as units_in_period
    from (select distinct order_date from ranked) as days
    join {{ ref('fct_order_items') }} as items
        on items.order_date > {{ add_days(-var('velocity_days'), 'days.order_date') }}
        and items.order_date <= days.order_date
        and items.placement_known
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
    cast(
        {{ round_half_up_ratio('velocity.units_in_period', var('velocity_days'), 2) }}
        as decimal(12, 2)
    ) as units_per_day,
    -- closing / (units / days) = closing * days / units: from the whole numbers, not from the
    -- rounded units_per_day.
    cast(
        {{ round_half_up_ratio(
            'stock.closing_on_hand * ' ~ var('velocity_days'), 'velocity.units_in_period', 1
        ) }}
        as decimal(10, 1)
    ) as days_of_stock_left
from ranked
left join velocity
    on velocity.order_date = ranked.order_date and velocity.product_id = ranked.product_id
left join stock on stock.order_date = ranked.order_date and stock.product_id = ranked.product_id
where ranked.sales_rank <= {{ var('top_products') }}
