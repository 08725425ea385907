{{ config(materialized='view') }}

with

cast_failures as (
    {{ cast_rejects('events_api', source('events', 'events'), 'events', cast_checks('events')) }}
),

deduplicated as (
    {{ deduplicated_rejects('cast_failures') }}
)

select * from deduplicated
