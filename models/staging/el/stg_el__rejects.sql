{{ config(materialized='view') }}

with

shop_rejects as (
    select * from {{ source('shop', 'rejects') }}
),

event_rejects as (
    select * from {{ source('events', 'rejects') }}
),

marketing_rejects as (
    select * from {{ source('marketing', 'rejects') }}
),

all_rejects as (
    {% for relation in ['shop_rejects', 'event_rejects', 'marketing_rejects'] %}
        select
            source as source_name,
            source_table,
            reason_code,
            reason,
            record as raw_record,
            _source as source_location,
            _extracted_at,
            _dlt_load_id
        from {{ relation }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from all_rejects
