{#-
  Every place where DuckDB's SQL and Apache Spark's differ, as `adapter.dispatch` macros: the
  models call these and stay one text for both engines (target `dev` = DuckDB, target `spark`).
  The DuckDB variants render exactly the SQL the models held before. What differs:

  - reading the lake (`source()` in source.sql): DuckDB's `read_parquet(glob)`; on Spark a
    temporary view over the same folder (`spark__lake_relation`);
  - replacing a partition window: DuckDB deletes the window in a pre-hook and appends (or
    delete+inserts by key); Spark, whose Parquet tables cannot delete rows, overwrites the
    window's partitions (`partition_window_config`, `delete_partition_window`,
    `clear_emptied_days`, `remove_moved_keys`);
  - unnesting a list with its positions, adding days to a date, an integer sign, and the
    contract's type names (`struct(...)[]` vs `array<struct<...>>`);
  - where Spark keeps a table: `<data>/spark/<schema>/<table>` (`spark__location_clause`).
-#}

{#- ---------------------------------------------------------------- incremental windows -#}

{#-
  The config of a model that replaces its partition window [start, end) on every run, keyed by
  the day column `column` (and, for a model whose rows move between days, `unique_key`).
  DuckDB: append (or delete+insert by key) after a pre-hook that deletes the window, in one
  transaction. Spark: the table is partitioned by `column`; dbt-spark's `insert_overwrite`
  writes the days the new rows fall on, a post-hook empties the window's days that got none,
  and with a key another drops the moved rows from the days outside the window.
-#}
{% macro partition_window_config(column, unique_key=none) -%}
    {{ return(adapter.dispatch('partition_window_config', 'batch_platform')(column, unique_key)) }}
{%- endmacro %}

{% macro default__partition_window_config(column, unique_key) -%}
    {%- set settings = {
        'materialized': 'incremental',
        'incremental_strategy': 'delete+insert' if unique_key else 'append',
        'pre_hook': "{{ delete_partition_window('" ~ column ~ "') }}",
    } -%}
    {%- if unique_key -%}{%- do settings.update({'unique_key': unique_key}) -%}{%- endif -%}
    {{ return(settings) }}
{%- endmacro %}

{% macro spark__partition_window_config(column, unique_key) -%}
    {%- set hooks = ["{{ clear_emptied_days('" ~ column ~ "') }}"] -%}
    {%- if unique_key -%}
        {%- do hooks.append("{{ remove_moved_keys('" ~ column ~ "', '" ~ unique_key ~ "') }}") -%}
    {%- endif -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'insert_overwrite',
        'file_format': 'parquet',
        'partition_by': [column],
        'post_hook': hooks,
    }) }}
{%- endmacro %}

{#-
  DuckDB's pre-hook of every partitioned incremental model: clear the window before the new
  rows are written, so a re-run replaces exactly its partitions (days that became empty
  included) and nothing else. (Spark: `clear_emptied_days`.)
-#}
{% macro delete_partition_window(column) -%}
    {{ return(adapter.dispatch('delete_partition_window', 'batch_platform')(column)) }}
{%- endmacro %}

{#- DuckDB: delete the window, inside the model's transaction. -#}
{% macro default__delete_partition_window(column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ in_partition_window(column) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#-
  Spark, after insert_overwrite wrote the days the window's new rows fall on: a day of the
  window that kept rows from before but got no new row is overwritten with nothing (a static
  partition overwrite of an empty select), as DuckDB's delete of the window would have left
  it. Done after the write, not before, so a run that fails while writing leaves every old
  partition in place (Spark moves a partition in only when its job commits).
-#}
{% macro clear_emptied_days(column) -%}
    {%- if execute and is_incremental() -%}
        {%- set written = this.incorporate(path={'identifier': this.identifier ~ '__dbt_tmp'})
            .include(database=false, schema=false) -%}
        {%- set col = adapter.quote(column) -%}
        {%- set days = run_query(
            "select distinct " ~ col ~ " from " ~ this ~ " where " ~ in_partition_window(column)
            ~ " except select distinct " ~ col ~ " from " ~ written) -%}
        {%- for row in days.rows -%}
            {%- do _spark_empty_partition(column, row[0]) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#-
  Spark, models with a key whose rows move between days (an order placed on a day before its
  first known event): after the window was written, drop its keys from the days outside it,
  as DuckDB's delete+insert does. Those days are rewritten without the moved rows in one
  dynamic partition overwrite; a day left with no row is emptied.
-#}
{% macro remove_moved_keys(column, unique_key) -%}
    {%- if execute and is_incremental() -%}
        {%- set col = adapter.quote(column) -%}
        {%- set key = adapter.quote(unique_key) -%}
        {%- set moved -%}
            select {{ col }} as day, count_if({{ key }} not in (select {{ key }} from {{ this }}
                where {{ in_partition_window(column) }})) as kept
            from {{ this }}
            where not ({{ in_partition_window(column) }})
            group by {{ col }}
            having count_if({{ key }} in (select {{ key }} from {{ this }}
                where {{ in_partition_window(column) }})) > 0
        {%- endset -%}
        {%- set days = run_query(moved) -%}
        {%- set emptied = days.rows | selectattr(1, 'equalto', 0) | map(attribute=0) | list -%}
        {%- set rewritten = days.rows | rejectattr(1, 'equalto', 0) | map(attribute=0) | list -%}
        {%- if rewritten -%}
            {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='quoted') | join(', ') -%}
            {%- call statement('remove_moved_keys') -%}
                insert overwrite table {{ this }} partition ({{ col }})
                select {{ columns }} from {{ this }}
                where {{ col }} in ({% for day in rewritten %}{{ _spark_date(day) }}{{ ', ' if not loop.last }}{% endfor %})
                    and {{ key }} not in (select {{ key }} from {{ this }} where {{ in_partition_window(column) }})
            {%- endcall -%}
        {%- endif -%}
        {%- for day in emptied -%}
            {%- do _spark_empty_partition(column, day) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- A date read back from the table, as a Spark date literal (parsed first: a date, or an error). -#}
{% macro _spark_date(value) -%}
    date'{{ modules.datetime.date.fromisoformat(value | string).isoformat() }}'
{%- endmacro %}

{#- Overwrite one day's partition of `this` with no rows (typed nulls, no table read). -#}
{% macro _spark_empty_partition(column, day) -%}
    {%- set nulls = [] -%}
    {%- for c in adapter.get_columns_in_relation(this) if c.name != column -%}
        {%- do nulls.append('cast(null as ' ~ c.data_type ~ ') as ' ~ c.quoted) -%}
    {%- endfor -%}
    {%- call statement('empty_partition') -%}
        insert overwrite table {{ this }} partition ({{ adapter.quote(column) }} = {{ _spark_date(day) }})
        select {{ nulls | join(', ') }} where false
    {%- endcall -%}
{%- endmacro %}

{#- Spark keeps each model's Parquet files at a known folder, found again by every session. -#}
{% macro spark__location_clause() -%}
    {%- set data = env_var('BATCH_PLATFORM_DATA_DIR', '../data') if execute else '../data' -%}
    location '{{ data }}/spark/{{ model.schema }}/{{ model.alias }}'
{%- endmacro %}

{#- ---------------------------------------------------------------------- expressions -#}

{#-
  The elements of a list column, one row each: `<element>` and, if asked, its 1-based
  `<position>`. Goes in a select list (one per select).
-#}
{% macro list_elements(list, element, position=none) -%}
    {{ return(adapter.dispatch('list_elements', 'batch_platform')(list, element, position)) }}
{%- endmacro %}

{% macro default__list_elements(list, element, position) -%}
    unnest({{ list }}) as {{ element }}
    {%- if position %}, generate_subscripts({{ list }}, 1) as {{ position }}{% endif -%}
{%- endmacro %}

{% macro spark__list_elements(list, element, position) -%}
    {%- if position -%}
        inline(transform({{ list }}, (value, index) -> named_struct(
            '{{ element }}', value, '{{ position }}', index + 1)))
    {%- else -%}
        explode({{ list }}) as {{ element }}
    {%- endif -%}
{%- endmacro %}

{#- `date` plus `days` (negative: minus), a date or timestamp as dbt.dateadd gives it. -#}
{% macro add_days(days, date) -%}
    {{ return(adapter.dispatch('add_days', 'batch_platform')(days, date)) }}
{%- endmacro %}

{% macro default__add_days(days, date) -%}
    {{ dbt.dateadd('day', days, date) }}
{%- endmacro %}

{% macro spark__add_days(days, date) -%}
    date_add({{ date }}, {{ days }})
{%- endmacro %}

{#- The sign of a whole number as a whole number (Spark's sign() is a double). -#}
{% macro whole_sign(value) -%}
    {{ return(adapter.dispatch('whole_sign', 'batch_platform')(value)) }}
{%- endmacro %}

{% macro default__whole_sign(value) -%}
    sign({{ value }})
{%- endmacro %}

{% macro spark__whole_sign(value) -%}
    cast(sign({{ value }}) as int)
{%- endmacro %}

{#- A type by its DuckDB name (as the contracts in the _sources.yml files write them), in the
    engine's terms. -#}
{% macro contract_type(data_type) -%}
    {{ return(adapter.dispatch('contract_type', 'batch_platform')(data_type)) }}
{%- endmacro %}

{% macro default__contract_type(data_type) -%}
    {{ return(data_type) }}
{%- endmacro %}

{#- struct(a varchar, b integer)[] -> array<struct<a:string,b:int>>; varchar -> string. -#}
{% macro spark__contract_type(data_type) -%}
    {%- set text = data_type | trim -%}
    {%- set listed = modules.re.match('^(.*)\\[\\]$', text) -%}
    {%- if listed -%}
        {{ return('array<' ~ spark__contract_type(listed.group(1)) ~ '>') }}
    {%- endif -%}
    {%- set struct = modules.re.match('^struct\\s*\\((.*)\\)$', text, modules.re.I) -%}
    {%- if struct -%}
        {%- set fields = [] -%}
        {%- for field in modules.re.split(',\\s*(?![^()]*\\))', struct.group(1)) -%}
            {%- set parts = field.strip().split(' ', 1) -%}
            {%- do fields.append(parts[0] ~ ':' ~ spark__contract_type(parts[1])) -%}
        {%- endfor -%}
        {{ return('struct<' ~ fields | join(',') ~ '>') }}
    {%- endif -%}
    {%- set names = {'varchar': 'string', 'integer': 'int', 'timestamp': 'timestamp_ntz'} -%}
    {{ return(names.get(text | lower, text)) }}
{%- endmacro %}

{#- ----------------------------------------------------------------------- the lake -#}

{#- Whether a lake glob matches a file yet: DuckDB's glob(); on Spark the session's
    `lake_has_files` (batch_platform/spark_warehouse.py). The path goes in as a literal. -#}
{% macro lake_has_files(pattern) -%}
    {{ return(adapter.dispatch('lake_has_files', 'batch_platform')(pattern)) }}
{%- endmacro %}

{% macro default__lake_has_files(pattern) -%}
    {%- set literal = "'" ~ pattern.replace("'", "''") ~ "'" -%}
    {%- set found = run_query("select 1 from glob(" ~ literal ~ ") limit 1") -%}
    {{ return(found.rows | length > 0) }}
{%- endmacro %}

{% macro spark__lake_has_files(pattern) -%}
    {%- set literal = "'" ~ pattern.replace('\\', '\\\\').replace("'", "\\'") ~ "'" -%}
    {%- set found = run_query("select lake_has_files(" ~ literal ~ ")") -%}
    {{ return(found.rows[0][0]) }}
{%- endmacro %}

{#-
  A source's `external_location` with its placeholders filled in, or none. dbt-duckdb renders
  it into the relation itself; on Spark it is rendered here the same way (`{lake}` from the
  source's meta, `{schema}`, `{name}`, `{identifier}`), so the lake's layout is written once,
  in the _sources.yml files.
-#}
{% macro lake_location(relation, source_name, table_name) -%}
    {{ return(adapter.dispatch('lake_location', 'batch_platform')(relation, source_name, table_name)) }}
{%- endmacro %}

{% macro default__lake_location(relation, source_name, table_name) -%}
    {{ return(relation.external) }}
{%- endmacro %}

{% macro spark__lake_location(relation, source_name, table_name) -%}
    {%- set node = graph.sources.values()
        | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name)
        | first -%}
    {%- set template = node.config.external_location if node else none -%}
    {%- if not template -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set values = dict(node.config.meta) -%}
    {%- do values.update({'schema': node.schema, 'name': node.name, 'identifier': node.identifier}) -%}
    {{ return(template.format(**values)) }}
{%- endmacro %}

{#-
  The relation a source reads: its files, or `empty` (a select of the contract's columns
  matching no row) while the lake holds none. DuckDB: dbt-duckdb's own relation from
  `external_location`, or the empty select in its place. Spark: a temporary view over the
  glob's folder, hive partitions (`dt=...`) discovered as DuckDB's `hive_partitioning` does,
  files of different schemas merged (`union_by_name`), and without hive partitioning every
  Parquet file below the folder; or a view of the empty select.
-#}
{% macro lake_relation(relation, external, pattern, empty) -%}
    {{ return(adapter.dispatch('lake_relation', 'batch_platform')(relation, external, pattern, empty)) }}
{%- endmacro %}

{% macro default__lake_relation(relation, external, pattern, empty) -%}
    {{ return(relation if empty is none else relation.incorporate(external=empty)) }}
{%- endmacro %}

{% macro spark__lake_relation(relation, external, pattern, empty) -%}
    {%- if pattern is none -%}
        {{ exceptions.raise_compiler_error(
            "source " ~ relation ~ ": Spark reads only external_location read_parquet('<glob>')") }}
    {%- endif -%}
    {%- set view = 'lake__' ~ relation.schema ~ '__' ~ relation.identifier -%}
    {%- set hive = modules.re.search("hive_partitioning\\s*=\\s*(true|1)\\b", external, modules.re.I) -%}
    {%- set folder = pattern.split('/*')[0] -%}
    {%- set literal = "'" ~ folder.replace('\\', '\\\\').replace("'", "\\'") ~ "'" -%}
    {%- call statement('lake_view') -%}
        {%- if empty is none %}
        create or replace temporary view {{ view }} using parquet options (
            path {{ literal }}, mergeSchema 'true'
            {%- if not hive %}, recursiveFileLookup 'true', pathGlobFilter '*.parquet'{% endif %})
        {%- else %}
        create or replace temporary view {{ view }} as select * from {{ empty }} as empty
        {%- endif %}
    {%- endcall -%}
    {{ return(api.Relation.create(identifier=view, type='view').include(database=false, schema=false)) }}
{%- endmacro %}
