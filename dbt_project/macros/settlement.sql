{#-
  An order's lifecycle (payment, cancellation, shipment, delivery) happens over the days after
  it was placed, and events can arrive days late. Models keyed by the day an order was placed
  therefore read lifecycle events from the window's start up to `settlement_days` after its end.
  Dagster mirrors this with a partition mapping, so a late event re-opens the orders it touches.
-#}
{% macro settlement_end() -%}
    {{ dbt.dateadd('day', var('settlement_days'), partition_end()) }}
{%- endmacro %}

{% macro in_settlement_window(column) -%}
    {{ column }} >= {{ partition_start() }} and {{ column }} < {{ settlement_end() }}
{%- endmacro %}

{#- A ratio that is null instead of failing when the denominator is zero. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when {{ denominator }} = 0 then null else cast({{ numerator }} as double) / {{ denominator }} end
{%- endmacro %}
