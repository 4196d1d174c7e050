{{ config(materialized='table') }}

-- Products as the catalog describes them now, with the stock the inventory service holds now.
select
    products.product_id,
    products.sku,
    products.product_name,
    products.category,
    products.unit_price,
    stock.on_hand,
    stock.updated_at as stock_updated_at
from {{ ref('stg_catalog__products') }} as products
left join {{ ref('stg_inventory__stock_levels') }} as stock
    on stock.product_id = products.product_id
