{{ config(materialized='table') }}

-- Customers with PII already masked in staging, and when they first and last ordered.
with orders as (
    select customer_id, min(order_date) as first_order_date, max(order_date) as last_order_date,
        count(*) as orders
    from {{ ref('fct_orders') }}
    group by customer_id
)

select
    customers.customer_id,
    customers.email_hash,
    customers.phone_hash,
    customers.country,
    customers.created_at,
    orders.first_order_date,
    orders.last_order_date,
    coalesce(orders.orders, 0) as lifetime_orders
from {{ ref('stg_customers__customers') }} as customers
left join orders on orders.customer_id = customers.customer_id
