{{
    config(
        on_schema_change='append_new_columns',
        **partition_window_config('updated_date')
    )
}}

-- Every stock movement, partitioned by the day the row was last written in the inventory
-- database (the extract's watermark day). Movements are append-only in the service; should
-- one be corrected later, the newest version in the window wins.
select
    movement_id,
    product_id,
    order_id,
    quantity,
    reason,
    occurred_at,
    cast(occurred_at as date) as movement_date,
    updated_at,
    cast(dt as date) as updated_date
from {{ source('inventory', 'stock_movements') }}
where {{ in_partition_window('dt') }}
qualify row_number() over (partition by movement_id order by updated_at desc) = 1
