{% macro loaded_since_last_build(column='_extracted_at') %}
    {#- Incremental filter of staging models: raw rows loaded since this model last saw data, minus
        `lookback_days` as a safety net against clock skew and loads that overlapped a build. -#}
    {{ column }} > (
        select {{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(previous_build.' ~ column ~ ')') }}
        from {{ this }} as previous_build
    )
{% endmacro %}
