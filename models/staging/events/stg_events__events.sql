{{ config(unique_key='event_id') }}

with

source_rows as (
    select * from {{ source('events', 'events') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        event_id,
        cast(user_id as integer) as user_id,
        session_id as source_session_id,
        event_type,
        cast(event_timestamp as timestamp) as event_at,
        cast(event_timestamp as date) as event_date,
        cast(received_at as timestamp) as received_at,
        {{ json_extract_string('properties', 'page') }} as page_path,
        cast({{ json_extract_string('properties', 'product_id') }} as integer) as product_id,
        cast({{ json_extract_string('properties', 'value') }} as decimal(12, 2)) as event_value,
        cast({{ column_or_null(source('events', 'events'), 'app_version') }} as {{ dbt.type_string() }}) as app_version,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

-- at-least-once delivery: keep the first delivery of every event id
first_delivery as (
    {{ latest_version(
        'renamed',
        'event_id',
        ['event_id', 'user_id', 'source_session_id', 'event_type', 'event_at', 'event_date', 'received_at',
         'page_path', 'product_id', 'event_value', 'app_version', '_extracted_at', '_dlt_load_id'],
        'received_at asc, _extracted_at asc',
        drift_columns=['app_version']
    ) }}
)

select * from first_delivery
