{% macro touched_dates(date_column, sources) %}
    {#- Dates a date-grained mart must recompute in an incremental run: every date that has a row
        extracted after this mart's watermark (so any lateness is handled exactly), plus the safety-net
        dates of `safety_net_dates`. `sources` is a list of relations carrying `date_column` and
        `_extracted_at`. -#}
    {% for source_relation in sources %}
        select {{ date_column }} as touched_date
        from {{ source_relation }}
        where _extracted_at > (select max(previous_build._watermark) from {{ this }} as previous_build)
        union
    {% endfor %}
    {{ safety_net_dates(date_column, sources[0]) }}
{% endmacro %}

{% macro safety_net_dates(date_column, source_relation) %}
    {#- Dates recomputed whatever was loaded: the last `lookback_days` dates, plus the dates between
        the vars `backfill_from` and `backfill_to` when a backfill asks for them (`el run --from/--to`). -#}
    select {{ date_column }} as touched_date
    from {{ source_relation }}
    where {{ date_column }} >= (
        select {{ dbt.dateadd('day', -1 * var('lookback_days'), 'max(lookback_source.' ~ date_column ~ ')') }}
        from {{ source_relation }} as lookback_source
    )
    {% if var('backfill_from', none) %}
        union
        select backfill_source.{{ date_column }} as touched_date
        from {{ source_relation }} as backfill_source
        where backfill_source.{{ date_column }} between {{ dbt.cast(dbt.string_literal(var('backfill_from')), 'date') }}
            and {{ dbt.cast(dbt.string_literal(var('backfill_to', var('backfill_from'))), 'date') }}
    {% endif %}
{% endmacro %}
