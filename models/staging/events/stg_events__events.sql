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
        {{ safe_cast('user_id', 'bigint') }} as user_id,
        session_id as source_session_id,
        event_type,
        {{ safe_cast('event_timestamp', 'timestamp') }} as event_at,
        cast({{ safe_cast('event_timestamp', 'timestamp') }} as date) as event_date,
        {{ safe_cast('received_at', 'timestamp') }} as received_at,
        {{ json_extract_string('properties', 'page') }} as page_path,
        {{ safe_cast(json_extract_string('properties', 'product_id'), 'integer') }} as product_id,
        {{ safe_cast(json_extract_string('properties', 'value'), 'decimal(12, 2)') }} as event_value,
        cast({{ column_or_null(source('events', 'events'), 'app_version') }} as {{ dbt.type_string() }}) as app_version,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the event to stg_events__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('events')) }}
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
