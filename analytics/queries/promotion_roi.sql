-- Question: which promotions pay off? Per campaign code: redemptions, how many were cancelled,
-- the revenue they brought, what the discount cost and the revenue per unit of discount.
select
    perf.promotion_code,
    coalesce(any_value(promotions.campaign_name), '(code unknown to the promotions service)')
        as campaign_name,
    any_value(promotions.discount_pct) as discount_pct,
    min(perf.order_date) as first_day,
    max(perf.order_date) as last_day,
    sum(perf.redemptions) as redemptions,
    sum(perf.cancelled_redemptions) as cancelled_redemptions,
    sum(perf.revenue) as revenue,
    sum(perf.discount_cost) as discount_cost,
    round(sum(perf.revenue) / nullif(sum(perf.discount_cost), 0), 2) as revenue_per_discount_unit
from scenario.promotion_performance_daily as perf
left join middle_platform.dim_promotions as promotions
    on promotions.promotion_code = perf.promotion_code
group by perf.promotion_code
order by revenue_per_discount_unit desc nulls last, revenue desc
