{% macro epoch_seconds_between(start_timestamp, end_timestamp) %}
    {#- Elapsed seconds from `start_timestamp` to `end_timestamp`, fractional (microsecond precision),
        unlike `dbt.datediff(..., 'second')`, which counts second boundaries (a 1,799.2 s gap that
        crosses 1,800 boundaries would count as 1,800). Dispatched: duckdb epoch_us, postgres
        extract(epoch), spark unix_micros; default: datediff in microseconds / 1e6. -#}
    {{ return(adapter.dispatch('epoch_seconds_between')(start_timestamp, end_timestamp)) }}
{% endmacro %}

{% macro default__epoch_seconds_between(start_timestamp, end_timestamp) -%}
    ({{ dbt.datediff(start_timestamp, end_timestamp, 'microsecond') }} / 1000000.0)
{%- endmacro %}

{% macro duckdb__epoch_seconds_between(start_timestamp, end_timestamp) -%}
    ((epoch_us({{ end_timestamp }}) - epoch_us({{ start_timestamp }})) / 1000000.0)
{%- endmacro %}

{% macro postgres__epoch_seconds_between(start_timestamp, end_timestamp) -%}
    extract(epoch from ({{ end_timestamp }} - {{ start_timestamp }}))
{%- endmacro %}

{% macro spark__epoch_seconds_between(start_timestamp, end_timestamp) -%}
    ((unix_micros({{ end_timestamp }}) - unix_micros({{ start_timestamp }})) / 1000000.0)
{%- endmacro %}
