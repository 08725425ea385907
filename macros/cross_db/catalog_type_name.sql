{% macro catalog_type_name(type_name) %}
    {#- The name under which the engine's catalog reports `type_name` (what
        adapter.get_columns_in_relation returns), for tests that compare column types by name, such as
        dbt_expectations.expect_column_values_to_be_of_type. Dispatched: default the name itself
        (DuckDB, Spark); postgres spells the naive timestamp `timestamp without time zone`. -#}
    {{ return(adapter.dispatch('catalog_type_name')(type_name)) }}
{% endmacro %}

{% macro default__catalog_type_name(type_name) %}{{ return(type_name) }}{% endmacro %}

{% macro postgres__catalog_type_name(type_name) %}
    {%- set names = {'timestamp': 'timestamp without time zone'} -%}
    {{ return(names.get(type_name | lower, type_name)) }}
{% endmacro %}
