{{ config(materialized='view') }}

with

{% for table in ['customers', 'products', 'orders', 'order_items', 'payments'] %}
    {{ table }}_failures as (
        {{ cast_rejects('shop_db', source('shop', table), table, cast_checks(table)) }}
    ),
{% endfor %}

cast_failures as (
    {% for table in ['customers', 'products', 'orders', 'order_items', 'payments'] %}
        select * from {{ table }}_failures
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

deduplicated as (
    {{ deduplicated_rejects('cast_failures') }}
)

select * from deduplicated
