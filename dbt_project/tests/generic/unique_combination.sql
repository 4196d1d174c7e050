{#- No row shares the same values of all the given columns (dbt packages cannot be fetched
    here, so this replaces dbt_utils.unique_combination_of_columns). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
