{#-
  The partition window every incremental model processes: the half-open interval
  [min_date, max_date). The defaults in dbt_project.yml cover all time, so a plain `dbt build`
  works; `--vars '{min_date: ..., max_date: ...}'` narrows it by hand.

  Dagster passes the window of the partitions being materialised in the environment
  (BATCH_PLATFORM_WINDOW_START / _END, see batch_platform/transform/dbt_vars.py), read only
  while executing (`execute`): a window passed as `--vars`, or an `env_var` read while
  parsing, would make dbt parse the whole project again at every new window.

  The values are parsed as dates before they reach SQL: anything that is not a date (a hostile
  partition key, a typo) stops compilation instead of being spliced into a statement.
-#}
{% macro _window_date(name) -%}
    {%- set names = {'min_date': 'BATCH_PLATFORM_WINDOW_START', 'max_date': 'BATCH_PLATFORM_WINDOW_END'} -%}
    {%- set from_environment = env_var(names[name], '') if execute else '' -%}
    {%- set raw = (from_environment or var(name)) | string -%}
    {%- set parsed = modules.datetime.date.fromisoformat(raw) -%}
    cast('{{ parsed.isoformat() }}' as date)
{%- endmacro %}

{% macro partition_start() -%}{{ _window_date('min_date') }}{%- endmacro %}
{% macro partition_end() -%}{{ _window_date('max_date') }}{%- endmacro %}

{#- `column >= start and column < end` for the current window. -#}
{% macro in_partition_window(column) -%}
    {{ column }} >= {{ partition_start() }} and {{ column }} < {{ partition_end() }}
{%- endmacro %}

{#- The pre-hook that clears the window before it is written again: `delete_partition_window`
    (macros/dialect.sql), one per engine. -#}
