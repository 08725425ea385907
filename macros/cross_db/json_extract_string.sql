{% macro json_extract_string(json_column, key) %}
    {#- The text value of `key` in the JSON text `json_column`. Dispatched: duckdb json_extract_string,
        postgres ->>, snowflake :key, spark get_json_object; default json_extract_scalar. -#}
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

{% macro spark__json_extract_string(json_column, key) %}
    get_json_object({{ json_column }}, '$.{{ key }}')
{% endmacro %}
