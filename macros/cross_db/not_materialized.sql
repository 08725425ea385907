{% macro not_materialized() %}
    {#- `with x as {{ not_materialized() }} (...)`: ask the engine to inline a CTE that is read several
        times instead of copying it first (DuckDB copied all events of a 10M-event history). Engines
        without the hint get plain `as (...)`. -#}
    {{ return(adapter.dispatch('not_materialized')()) }}
{% endmacro %}

{% macro default__not_materialized() %}{% endmacro %}

{% macro duckdb__not_materialized() %}not materialized{% endmacro %}

{% macro postgres__not_materialized() %}not materialized{% endmacro %}
