{#-
  One row per order in `order_events` (a relation or CTE of `stg_orders__order_events` rows):
  the order as the orders service has reported it so far. Every order event carries the whole
  order (customer, channel, promotion, totals, items), so the state is taken from the
  `order_placed` event, or, while that event is still in flight, from the order's first event
  that has arrived. The order's day is the day it was placed, else the day of that first event
  (`placement_known` false). `fct_orders` and `fct_order_items` both use this, so an order and
  its lines are always on the same day.
-#}
{% macro order_state(order_events) -%}
    select
        order_id,
        customer_id,
        channel,
        promotion_code,
        currency,
        total_amount,
        discount_amount,
        items,
        placed_at,
        first_event_at,
        placed_at is not null as placement_known,
        cast(coalesce(placed_at, first_event_at) as date) as order_date
    from (
        select
            *,
            min(case when event_type = 'order_placed' then occurred_at end)
                over (partition by order_id) as placed_at,
            min(occurred_at) over (partition by order_id) as first_event_at,
            row_number() over (
                partition by order_id
                order by case when event_type = 'order_placed' then 0 else 1 end, occurred_at, event_id
            ) as preference
        from {{ order_events }}
    ) as ranked
    where preference = 1
{%- endmacro %}
