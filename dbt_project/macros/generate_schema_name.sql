{#- Schemas are named for the layer alone (staging, middle_platform, ...), not prefixed with the
    target schema, so analysts and the published snapshot see stable names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
