{{ config(**partition_window_config('movement_date')) }}

-- Inventory position per product and day: what moved that day and the stock at the day's
-- end. The closing position is the running sum of every movement up to that day, so the
-- window needs the sum of all earlier movements as its opening balance.
with movements as (
    select
        product_id,
        movement_date,
        sum(case when reason = 'sale' then -quantity else 0 end) as units_sold,
        sum(case when reason = 'restock' then quantity else 0 end) as units_restocked,
        sum(case when reason = 'adjustment' then quantity else 0 end) as units_adjusted,
        sum(quantity) as net_change
    from {{ ref('stg_inventory__stock_movements') }}
    where movement_date < {{ partition_end() }}
    group by product_id, movement_date
)

select
    product_id,
    movement_date,
    units_sold,
    units_restocked,
    units_adjusted,
    net_change,
    sum(net_change) over (
        partition by product_id order by movement_date rows between unbounded preceding and current row
    ) as closing_on_hand
from movements
qualify {{ in_partition_window('movement_date') }}
