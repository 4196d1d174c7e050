{#- Days whose break rate exceeds a threshold (a dbt var, so operators tune it without code).
    Used twice on the daily summary: once as a warning, once as an error. -#}
{% test break_rate_at_most(model, column_name, threshold_var) %}
select *
from {{ model }}
where {{ column_name }} > {{ var(threshold_var) | float }}
{% endtest %}
