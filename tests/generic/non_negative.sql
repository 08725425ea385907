{% test non_negative(model, column_name) %}
    {#- Core-mode range test: the column is never below zero (nulls pass; test them with not_null). -#}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
