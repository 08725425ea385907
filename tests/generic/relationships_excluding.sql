{% test relationships_excluding(model, column_name, to, field, excluded) %}
    {#- dbt's relationships test, minus the child values listed in `excluded` (a relation with a column
        named like `column_name`): e.g. the order lines of quarantined orders are rejects, not orphans,
        so the test measures real orphans only. (A `where` config cannot ref() a model.) -#}
    with

    children as (
        select {{ column_name }} as child_value
        from {{ model }}
        where {{ column_name }} is not null
    ),

    parents as (
        select {{ field }} as parent_value
        from {{ to }}
    ),

    excluded_values as (
        select {{ column_name }} as excluded_value
        from {{ excluded }}
    ),

    orphans as (
        select children.child_value
        from children
        left join parents on children.child_value = parents.parent_value
        left join excluded_values on children.child_value = excluded_values.excluded_value
        where parents.parent_value is null and excluded_values.excluded_value is null
    )

    select * from orphans
{% endtest %}
