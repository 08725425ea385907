{{ config(materialized='view') }}

-- a replayed poison message is the same record (topic, partition, offset, payload): one row
{{ staged_el_rejects(source('stream', 'rejects')) }}
