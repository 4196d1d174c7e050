{#-
  An order's lifecycle (payment, cancellation, shipment, delivery, refund) spans days, and its
  events can arrive late, so the event that tells an order's day may be missing for a while.
  Models keyed by an order's day therefore read events `settlement_days` before and after their
  window. Dagster mirrors this with a partition mapping of the same width, so a late event
  re-opens the days it can touch.
-#}
{% macro settlement_start() -%}
    {{ add_days(-var('settlement_days'), partition_start()) }}
{%- endmacro %}

{% macro settlement_end() -%}
    {{ add_days(var('settlement_days'), partition_end()) }}
{%- endmacro %}

{% macro in_settlement_window(column) -%}
    {{ column }} >= {{ settlement_start() }} and {{ column }} < {{ settlement_end() }}
{%- endmacro %}

{#- A ratio that is null instead of failing when the denominator is zero. -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when {{ denominator }} = 0 then null else cast({{ numerator }} as double) / {{ denominator }} end
{%- endmacro %}
