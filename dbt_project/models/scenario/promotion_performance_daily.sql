{{ config(**partition_window_config('order_date')) }}

-- Per campaign and day: how many orders redeemed it, the revenue they brought and what the
-- discount cost. Campaign names and discounts are current state: analysts join
-- middle_platform.dim_promotions (a code the promotions service does not know has no row there).
with redemptions as (
    select order_date, promotion_code, count(*) as redemptions,
        sum(total_amount) as revenue, sum(discount_amount) as discount_cost,
        count(distinct customer_id) as customers,
        sum(case when status = 'cancelled' then 1 else 0 end) as cancelled_redemptions
    from {{ ref('fct_orders') }}
    where placement_known and promotion_code is not null
        and {{ in_partition_window('order_date') }}
    group by order_date, promotion_code
)

select
    redemptions.order_date,
    redemptions.promotion_code,
    redemptions.redemptions,
    redemptions.cancelled_redemptions,
    redemptions.customers,
    redemptions.revenue,
    redemptions.discount_cost,
    {{ safe_ratio('redemptions.revenue', 'redemptions.discount_cost') }} as revenue_per_discount_unit
from redemptions
