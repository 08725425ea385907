{% test unique_in_window(model, column_name, window_column) %}
    {#- Primary-key test of a large incremental model that reads only what recent builds can have
        broken. A build writes rows whose `window_column` (staging: `_extracted_at`, at most
        `lookback_days` older than the newest; sessionized events: the build's `_watermark`) is recent,
        and a duplicate needs a written row: so the keys of the rows within `lookback_days` +
        `unique_test_window_days` of the newest `window_column` are checked against the whole table.
        A duplicate fails the run that writes it and every run in that window after it. When the
        window holds most rows (just after a full build) the plain whole-table test is cheaper and runs
        instead, as it does with `--full-refresh` or `--vars '{unique_tests_whole_table: true}'`. -#}
    {%- set days = var('lookback_days') + var('unique_test_window_days') %}
    {%- set cutoff = dbt.dateadd('day', -1 * days, 'max(' ~ window_column ~ ')') %}
    {%- set whole_table = flags.FULL_REFRESH or var('unique_tests_whole_table') %}
    {%- if execute and not whole_table and load_relation(model) is none %}
        {#- not built yet (`dbt compile` or `docs generate` on an empty warehouse): nothing to measure -#}
        {%- set whole_table = true %}
    {%- endif %}
    {%- if execute and not whole_table %}
        {%- set share = run_query(
            'select count(*) filter (where ' ~ window_column ~ ' > (select ' ~ cutoff ~ ' from ' ~ model ~ '))'
            ~ ' * 2 > count(*) from ' ~ model
        ) %}
        {%- set whole_table = share.columns[0].values()[0] %}
    {%- endif %}
    with

    {% if not whole_table %}
        window_keys as (
            select {{ column_name }}
            from {{ model }}
            where {{ window_column }} > (select {{ cutoff }} from {{ model }})
        ),
    {% endif %}

    duplicates as (
        select
            {{ column_name }} as unique_field,
            count(*) as n_records
        from {{ model }}
        where
            {{ column_name }} is not null
            {% if not whole_table %}
                and {{ column_name }} in (select window_keys.{{ column_name }} from window_keys)
            {% endif %}
        group by {{ column_name }}
        having count(*) > 1
    )

    select * from duplicates
{% endtest %}
