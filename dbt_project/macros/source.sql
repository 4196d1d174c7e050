{#-
  `source()` that tolerates an empty raw lake, so a plain `dbt build` works on a fresh clone.

  The sources read the lake through their `external_location` (`read_parquet('<glob>', ...)`,
  see the `_sources.yml` files), and DuckDB raises "No files found that match the pattern" when
  the glob matches no file: before any extract has run, every model would fail. So, when a
  source's glob matches no file, the source resolves to an empty relation with the contract's
  columns and types (its declared `columns` and their `data_type`, plus the hive partition
  column `dt`): models build empty and tests pass on empty tables. When a file exists, the
  relation is exactly the builtin one, so Dagster runs compile to the same SQL as before.

  The glob is read back from the relation dbt-duckdb rendered from `external_location`, so the
  lake's path pattern is written in one place only. At parse time nothing is queried.
-#}
{% macro source(source_name, table_name) %}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- set external = lake_location(relation, source_name, table_name) if execute else none -%}
    {%- if not external -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set pattern = _external_glob(external) -%}
    {%- if pattern is none or lake_has_files(pattern) -%}
        {{ return(lake_relation(relation, external, pattern, none)) }}
    {%- endif -%}
    {%- set empty = _empty_source(source_name, table_name, external) -%}
    {{ return(relation if empty is none else lake_relation(relation, external, pattern, empty)) }}
{% endmacro %}

{#- The path of `read_parquet('<path>', ...)` (or of a bare `'<path>'`), or none. -#}
{% macro _external_glob(external) %}
    {%- set match = modules.re.match("\\s*(?:\\w+\\s*\\(\\s*)?'((?:[^']|'')*)'", external) -%}
    {{ return(match.group(1).replace("''", "'") if match else none) }}
{% endmacro %}

{#-
  `(select cast(null as <type>) as <column>, ... where false)` for the source's contract, or none
  when it declares no columns. The lake is hive-partitioned by `dt=YYYY-MM-DD` (see
  batch_platform/extract/lake.py), which DuckDB reads as a date column after the file's ones.
-#}
{% macro _empty_source(source_name, table_name, external) %}
    {%- set node = graph.sources.values()
        | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name)
        | first -%}
    {%- if not node or not node.columns -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- if not column.data_type -%}
            {{ exceptions.raise_compiler_error(
                "source " ~ source_name ~ "." ~ table_name ~ ": column " ~ column.name
                ~ " needs a data_type to be read from an empty lake") }}
        {%- endif -%}
        {%- do columns.append("cast(null as " ~ contract_type(column.data_type) ~ ") as " ~ adapter.quote(column.name)) -%}
    {%- endfor -%}
    {%- set hive = modules.re.search("hive_partitioning\\s*=\\s*(true|1)\\b", external, modules.re.I) -%}
    {%- if hive and 'dt' not in node.columns -%}
        {%- do columns.append("cast(null as date) as dt") -%}
    {%- endif -%}
    {{ return("(select " ~ columns | join(", ") ~ " where false)") }}
{% endmacro %}
