{% test unique_combination(model, combination_of_columns) %}
    {#- Core-mode primary-key test of a compound key: no two rows share the values of
        `combination_of_columns` (dbt_utils.unique_combination_of_columns without the package). -#}
    with

    duplicates as (
        select
            {{ combination_of_columns | join(', ') }},
            count(*) as rows_with_key
        from {{ model }}
        group by {{ combination_of_columns | join(', ') }}
        having count(*) > 1
    )

    select * from duplicates
{% endtest %}
