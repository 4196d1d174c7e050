{{ config(materialized='table') }}

-- Current stock on hand per product: the newest version of each row across all extracted days
-- (the service updates rows in place, so each day's extract holds the rows changed that day).
select
    product_id,
    on_hand,
    updated_at
from {{ source('inventory', 'stock_levels') }}
qualify row_number() over (partition by product_id order by updated_at desc) = 1
