{#- Every record that did not make it into the marts, once, with why: the contract breakers el/
    rejected at load (one staging model per source) and the dbt-level rejects (values that do not fit
    their staging type, children of quarantined orders). -#}
with

{% set reject_models = [
    'stg_shop__rejects', 'stg_events__rejects', 'stg_marketing__rejects', 'stg_stream__rejects',
    'stg_shop__cast_rejects', 'stg_events__cast_rejects', 'stg_marketing__cast_rejects',
    'int_orders__quarantined_children',
] %}

{% for model in reject_models %}
    {{ model }} as (
        select * from {{ ref(model) }}
    ),
{% endfor %}

all_rejects as (
    {% for model in reject_models %}
        select
            reject_id,
            source_name,
            source_table,
            reason_code,
            reason,
            raw_record,
            source_location,
            first_extracted_at,
            last_extracted_at,
            times_extracted
        from {{ model }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from all_rejects
