{% macro record_json(columns, alias=none) %}
    {#- JSON text of a record made of `columns` (keys in the given order), for raw_record in the
        rejects models. Dispatched: duckdb json_object, postgres json_build_object, spark/default
        to_json(named_struct). -#}
    {{ return(adapter.dispatch('record_json')(columns, alias)) }}
{% endmacro %}

{% macro _record_json_pairs(columns, alias) -%}
    {%- for column in columns -%}
        '{{ column }}', {{ alias ~ '.' if alias else '' }}{{ column }}{% if not loop.last %}, {% endif %}
    {%- endfor -%}
{%- endmacro %}

{% macro default__record_json(columns, alias) -%}
    to_json(named_struct({{ _record_json_pairs(columns, alias) }}))
{%- endmacro %}

{% macro duckdb__record_json(columns, alias) -%}
    cast(json_object({{ _record_json_pairs(columns, alias) }}) as varchar)
{%- endmacro %}

{% macro postgres__record_json(columns, alias) -%}
    cast(json_build_object({{ _record_json_pairs(columns, alias) }}) as text)
{%- endmacro %}

{% macro business_columns(relation) %}
    {#- The columns of a raw relation without el/ and dlt lineage (`_extracted_at`, `_source`, `_dlt_*`,
        `_file_*`): a record re-extracted unchanged has the same business columns, sorted by name. -#}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- set business = [] -%}
    {%- for name in names | sort if not name.startswith('_') -%}{%- do business.append(name) -%}{%- endfor -%}
    {{ return(business) }}
{% endmacro %}
