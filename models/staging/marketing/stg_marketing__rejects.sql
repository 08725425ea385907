{{ config(materialized='view') }}

-- every re-extraction appends the same bad record again: one row per record
{{ staged_el_rejects(source('marketing', 'rejects')) }}
