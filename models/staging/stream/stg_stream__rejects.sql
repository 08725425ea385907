{{ config(materialized='view') }}

with

rejects as (
    select * from {{ source('stream', 'rejects') }}
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

-- a replayed poison message is the same record (topic, partition, offset, payload): one row
deduplicated as (
    {{ deduplicated_rejects('renamed') }}
)

select * from deduplicated
