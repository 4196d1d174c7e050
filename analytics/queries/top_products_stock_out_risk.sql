-- Question: which of the latest day's best-selling products will run out of stock first at
-- their recent sales velocity (units per day over the trailing week, all channels)?
with latest as (
    select max(order_date) as order_date from scenario.hot_selling_products_daily
),

best_sellers as (
    select
        hot.product_id,
        string_agg(hot.channel || ' #' || hot.sales_rank, ', ' order by hot.channel) as ranks,
        sum(hot.units_sold) as units_sold_that_day,
        max(hot.closing_on_hand) as closing_on_hand,
        round(max(hot.units_per_day), 2) as units_per_day,
        min(hot.days_of_stock_left) as days_of_stock_left
    from scenario.hot_selling_products_daily as hot
    join latest on latest.order_date = hot.order_date
    group by hot.product_id
)

select
    (select order_date from latest) as order_date,
    best_sellers.product_id,
    products.product_name,
    products.category,
    best_sellers.ranks,
    best_sellers.units_sold_that_day,
    best_sellers.closing_on_hand,
    best_sellers.units_per_day,
    best_sellers.days_of_stock_left,
    products.on_hand as on_hand_now
from best_sellers
left join middle_platform.dim_products as products
    on products.product_id = best_sellers.product_id
order by best_sellers.days_of_stock_left asc nulls last, best_sellers.units_sold_that_day desc
limit 20
