{% macro column_or_null(relation, column_name) %}
    {#- The column when the relation has it, else null (alias it at the call site): lets models
        survive a source column that appears later (schema drift), and lets incremental runs read
        the versions stored before the column existed. -#}
    {%- if execute -%}
        {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
        {{ column_name if column_name | lower in names else 'null' }}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{% endmacro %}
