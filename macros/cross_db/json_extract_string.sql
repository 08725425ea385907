{% macro json_extract_string(json_column, key) %}
    {{ return(adapter.dispatch('json_extract_string')(json_column, key)) }}
{% endmacro %}

{% macro default__json_extract_string(json_column, key) %}
    json_extract_scalar({{ json_column }}, '$.{{ key }}')
{% endmacro %}

{% macro duckdb__json_extract_string(json_column, key) %}
    json_extract_string({{ json_column }}, '$.{{ key }}')
{% endmacro %}

{% macro postgres__json_extract_string(json_column, key) %}
    ({{ json_column }})::json ->> '{{ key }}'
{% endmacro %}

{% macro snowflake__json_extract_string(json_column, key) %}
    {{ json_column }}:{{ key }}::varchar
{% endmacro %}
