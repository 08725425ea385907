{% macro type_varchar() %}
    {#- The variable-length string type that el/'s raw columns and the marts' contracts (`data_type:
        varchar`) use. dbt.type_string() is `text` on PostgreSQL, which an enforced contract or an
        incremental schema check sees as a different type from `character varying`: a string
        computed by a function (lower, md5, ...) is cast to this. Dispatched: default `varchar`
        (DuckDB, PostgreSQL), spark `string` (Spark casts only to string). -#}
    {{ return(adapter.dispatch('type_varchar')()) }}
{% endmacro %}

{% macro default__type_varchar() %}varchar{% endmacro %}

{% macro spark__type_varchar() %}string{% endmacro %}
