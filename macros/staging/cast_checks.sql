{% macro cast_checks(source_table) %}
    {#- The casts a staging model applies to the raw columns of `source_table` (the one list both the
        staging model and its cast-rejects model use): `expression` over the raw row, the staging
        `type`, and the `column` named in the reject reason. A row whose value does not fit goes to the
        rejects instead of failing the build. -#}
    {%- set integer = 'integer' -%}
    {%- set money = 'decimal(12, 2)' -%}
    {%- if source_table == 'customers' -%}
        {%- set checks = [
            {'column': 'customer_id', 'expression': 'customer_id', 'type': integer},
            {'column': 'created_at', 'expression': 'created_at', 'type': 'timestamp'},
            {'column': 'updated_at', 'expression': 'updated_at', 'type': 'timestamp'},
            {'column': 'deleted_at', 'expression': 'deleted_at', 'type': 'timestamp'},
            {'column': 'loyalty_points', 'expression': column_or_null(source('shop', 'customers'), 'loyalty_points'), 'type': integer},
        ] -%}
    {%- elif source_table == 'products' -%}
        {%- set checks = [
            {'column': 'product_id', 'expression': 'product_id', 'type': integer},
            {'column': 'price', 'expression': 'price', 'type': money},
            {'column': 'created_at', 'expression': 'created_at', 'type': 'timestamp'},
            {'column': 'updated_at', 'expression': 'updated_at', 'type': 'timestamp'},
            {'column': 'deleted_at', 'expression': 'deleted_at', 'type': 'timestamp'},
        ] -%}
    {%- elif source_table == 'orders' -%}
        {%- set checks = [
            {'column': 'order_id', 'expression': 'order_id', 'type': integer},
            {'column': 'customer_id', 'expression': 'customer_id', 'type': integer},
            {'column': 'ordered_at', 'expression': 'ordered_at', 'type': 'timestamp'},
            {'column': 'created_at', 'expression': 'created_at', 'type': 'timestamp'},
            {'column': 'updated_at', 'expression': 'updated_at', 'type': 'timestamp'},
            {'column': 'deleted_at', 'expression': 'deleted_at', 'type': 'timestamp'},
        ] -%}
    {%- elif source_table == 'order_items' -%}
        {%- set checks = [
            {'column': 'order_item_id', 'expression': 'order_item_id', 'type': integer},
            {'column': 'order_id', 'expression': 'order_id', 'type': integer},
            {'column': 'product_id', 'expression': 'product_id', 'type': integer},
            {'column': 'quantity', 'expression': 'quantity', 'type': integer},
            {'column': 'unit_price', 'expression': 'unit_price', 'type': money},
            {'column': 'line_amount', 'expression': 'quantity * unit_price', 'type': money},
            {'column': 'created_at', 'expression': 'created_at', 'type': 'timestamp'},
            {'column': 'updated_at', 'expression': 'updated_at', 'type': 'timestamp'},
        ] -%}
    {%- elif source_table == 'payments' -%}
        {%- set checks = [
            {'column': 'payment_id', 'expression': 'payment_id', 'type': integer},
            {'column': 'order_id', 'expression': 'order_id', 'type': integer},
            {'column': 'amount', 'expression': 'amount', 'type': money},
            {'column': 'created_at', 'expression': 'created_at', 'type': 'timestamp'},
            {'column': 'updated_at', 'expression': 'updated_at', 'type': 'timestamp'},
        ] -%}
    {%- elif source_table == 'events' -%}
        {%- set checks = [
            {'column': 'user_id', 'expression': 'user_id', 'type': 'bigint'},
            {'column': 'event_timestamp', 'expression': 'event_timestamp', 'type': 'timestamp'},
            {'column': 'received_at', 'expression': 'received_at', 'type': 'timestamp'},
            {'column': 'properties.product_id', 'expression': json_extract_string('properties', 'product_id'), 'type': integer},
            {'column': 'properties.value', 'expression': json_extract_string('properties', 'value'), 'type': money},
        ] -%}
    {%- elif source_table == 'spend' -%}
        {%- set checks = [
            {'column': 'spend_date', 'expression': 'spend_date', 'type': 'date'},
            {'column': 'spend', 'expression': 'spend', 'type': money},
            {'column': 'impressions', 'expression': 'impressions', 'type': 'bigint'},
            {'column': 'clicks', 'expression': 'clicks', 'type': 'bigint'},
            {'column': 'conversions', 'expression': column_or_null(source('marketing', 'spend'), 'conversions'), 'type': 'bigint'},
        ] -%}
    {%- else -%}
        {%- do exceptions.raise_compiler_error('cast_checks: unknown source table ' ~ source_table) -%}
    {%- endif -%}
    {{ return(checks) }}
{% endmacro %}
