-- Question: which promotions pay off? Per campaign code: redemptions, how many were cancelled,
-- the revenue they brought, what the discount cost and the revenue per unit of discount.
select
    promotion_code,
    coalesce(any_value(campaign_name), '(code unknown to the promotions service)')
        as campaign_name,
    any_value(discount_pct) as discount_pct,
    min(order_date) as first_day,
    max(order_date) as last_day,
    sum(redemptions) as redemptions,
    sum(cancelled_redemptions) as cancelled_redemptions,
    sum(revenue) as revenue,
    sum(discount_cost) as discount_cost,
    round(sum(revenue) / nullif(sum(discount_cost), 0), 2) as revenue_per_discount_unit
from scenario.promotion_performance_daily
group by promotion_code
order by revenue_per_discount_unit desc nulls last, revenue desc
