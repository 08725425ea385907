{{ config(materialized='view') }}

with

rejects as (
    select * from {{ source('marketing', 'rejects') }}
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

-- every re-extraction appends the same bad record again: one row per record
deduplicated as (
    {{ deduplicated_rejects('renamed') }}
)

select * from deduplicated
