{% macro safe_cast(expression, type) %}
    {#- `expression` cast to `type`, or null when the value does not fit the type (unparseable text,
        an integer out of range, a number with too many digits): staging never fails on a value.
        Dispatched (adapter.dispatch('safe_cast')):
        - duckdb: `try_cast`; integer types accept only integral text (DuckDB would round '12.5');
        - postgres: no try_cast, so the text is first matched against the type's literal syntax
          (integers with their int32/int64 range, numerics with their precision and scale,
          ISO dates and timestamps - a date may carry a time part, as on DuckDB - and floats within
          double precision's range), then cast;
        - spark and every other engine (default): `try_cast` (Spark 3.2+, Snowflake, SQL Server). -#}
    {{ return(adapter.dispatch('safe_cast')(expression, type)) }}
{% endmacro %}

{% macro default__safe_cast(expression, type) -%}
    try_cast({{ expression }} as {{ type }})
{%- endmacro %}

{% macro spark__safe_cast(expression, type) -%}
    try_cast({{ expression }} as {{ type }})
{%- endmacro %}

{% macro _is_integer_type(type) %}
    {{ return(type | lower in ['integer', 'int', 'bigint', 'smallint', 'int4', 'int8']) }}
{% endmacro %}

{% macro duckdb__safe_cast(expression, type) -%}
    {%- if _is_integer_type(type) -%}
        case
            when regexp_matches(trim(cast({{ expression }} as varchar)), '^[+-]?[0-9]+$')
                then try_cast(trim(cast({{ expression }} as varchar)) as {{ type }})
        end
    {%- else -%}
        try_cast({{ expression }} as {{ type }})
    {%- endif -%}
{%- endmacro %}

{% macro postgres__safe_cast(expression, type) -%}
    {%- set text = 'trim(cast(' ~ expression ~ ' as text))' -%}
    {%- set lowered = type | lower | replace(' ', '') -%}
    {%- if _is_integer_type(type) -%}
        {%- set digits = 10 if lowered in ['integer', 'int', 'int4'] else (5 if lowered == 'smallint' else 19) -%}
        case
            when {{ text }} ~ '^[+-]?[0-9]{1,{{ digits }}}$'
                and cast({{ text }} as numeric) between
                {{ '-2147483648 and 2147483647' if digits == 10 else ('-32768 and 32767' if digits == 5
                    else '-9223372036854775808 and 9223372036854775807') }}
                then cast({{ text }} as {{ type }})
        end
    {%- elif lowered.startswith('decimal') or lowered.startswith('numeric') -%}
        {%- set precision_scale = (lowered.split('(')[1].rstrip(')').split(',')) if '(' in lowered else ['38', '9'] -%}
        {%- set int_digits = (precision_scale[0] | int) - (precision_scale[1] | int) -%}
        case
            when {{ text }} ~ '^[+-]?[0-9]{1,{{ int_digits }}}(\.[0-9]*)?$'
                then cast({{ text }} as {{ type }})
        end
    {%- elif lowered == 'date' or lowered.startswith('timestamp') -%}
        {#- a date accepts a time part too (a timestamp's text), as DuckDB's try_cast does -#}
        case
            when {{ text }} ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([ T][0-2][0-9]:[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
                then cast({{ text }} as {{ type }})
        end
    {%- elif lowered in ['double', 'double precision', 'float', 'real'] -%}
        {#- at most 200 integer digits and a two-digit exponent: always within double precision's range -#}
        case
            when {{ text }} ~ '^[+-]?([0-9]{1,200}\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$'
                then cast({{ text }} as {{ type }})
        end
    {%- else -%}
        cast({{ expression }} as {{ type }})
    {%- endif -%}
{%- endmacro %}
