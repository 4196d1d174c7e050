{{ config(materialized='table') }}

-- Current product catalog: the newest version of each product across all extracted days.
select
    product_id,
    sku,
    name as product_name,
    category,
    unit_price,
    updated_at
from {{ source('catalog', 'products') }}
qualify row_number() over (partition by product_id order by updated_at desc) = 1
