{% macro deduplicated_rejects(from_cte) %}
    {#- One row per (source_name, source_table, reason, raw_record) of the reject rows in `from_cte`
        (columns source_name, source_table, reason_code, reason, raw_record, source_location,
        _extracted_at): a bad record re-extracted every day is one reject with its first and last
        extraction time and the number of reject rows (deliveries) it stands for. -#}
    select
        {{ dbt.hash(dbt.concat(['source_name', "'|'", 'source_table', "'|'", 'reason', "'|'", 'raw_record'])) }}
            as reject_id,
        source_name,
        source_table,
        max(reason_code) as reason_code,
        reason,
        raw_record,
        max(source_location) as source_location,
        min(_extracted_at) as first_extracted_at,
        max(_extracted_at) as last_extracted_at,
        cast(count(*) as bigint) as times_extracted
    from {{ from_cte }}
    group by source_name, source_table, reason, raw_record
{% endmacro %}

{% macro staged_el_rejects(rejects_relation) %}
    {#- The staging model of one source's el/ rejects table (`rejects_relation`, a source()): the raw
        columns renamed to the rejects vocabulary, then one row per record (`deduplicated_rejects`). The
        four `stg_<source>__rejects` models differ only in the source they read. -#}
    with

    rejects as (
        select * from {{ rejects_relation }}
    ),

    renamed as (
        select
            source as source_name,
            source_table,
            reason_code,
            reason,
            record as raw_record,
            _source as source_location,
            _extracted_at
        from rejects
    ),

    deduplicated as (
        {{ deduplicated_rejects('renamed') }}
    )

    select * from deduplicated
{% endmacro %}

{% macro cast_failed(check) -%}
    {#- True when the raw value of `check` is present but does not fit its staging type. -#}
    ({{ check.expression }} is not null and {{ safe_cast(check.expression, check.type) }} is null)
{%- endmacro %}

{% macro any_cast_failed(checks) -%}
    ({% for check in checks %}{{ cast_failed(check) }}{% if not loop.last %} or {% endif %}{% endfor %})
{%- endmacro %}

{% macro cast_reject_columns(checks) %}
    {#- reason_code and reason of the first failing cast of `checks`: `out_of_range` when the value is a
        number that does not fit the type (an integer beyond its range, too many digits), else
        `type_drift` (unparseable). -#}
    case
        {% for check in checks %}
            when {{ cast_failed(check) }}
                then
                    {% if check.type | lower == 'date' or (check.type | lower).startswith('timestamp') %}
                        'type_drift'
                    {% else %}
                        case
                            when {{ safe_cast(check.expression, dbt.type_float()) }} is not null then 'out_of_range'
                            else 'type_drift'
                        end
                    {% endif %}
        {% endfor %}
    end as reason_code,
    case
        {% for check in checks %}
            when {{ cast_failed(check) }}
                then {{ dbt.concat([
                    "'" ~ check.column ~ "='",
                    dbt.cast(check.expression, dbt.type_string()),
                    "' does not fit " ~ check.type ~ "'",
                ]) }}
        {% endfor %}
    end as reason
{% endmacro %}

{% macro cast_rejects(source_name, source_relation, source_table, checks) %}
    {#- dbt-level rejects of one raw table: its rows where a cast of `checks` fails (they are left out
        of the staging model), deduplicated like the el/ rejects. `source_name` is the el/ source the
        rows came from (shop_db, events_api, marketing_files). -#}
    select
        '{{ source_name }}' as source_name,
        '{{ source_table }}' as source_table,
        {{ cast_reject_columns(checks) }},
        {{ record_json(business_columns(source_relation)) }} as raw_record,
        _source as source_location,
        _extracted_at
    from {{ source_relation }}
    where {{ any_cast_failed(checks) }}
{% endmacro %}
