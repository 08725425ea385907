{{ config(materialized='view') }}

with

cast_failures as (
    {{ cast_rejects('marketing_files', source('marketing', 'spend'), 'spend', cast_checks('spend')) }}
),

deduplicated as (
    {{ deduplicated_rejects('cast_failures') }}
)

select * from deduplicated
