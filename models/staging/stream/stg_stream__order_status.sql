{{ config(unique_key='message_id') }}

with

source_rows as (
    select * from {{ source('stream', 'order_status') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ dbt.cast(dbt.concat([
            'kafka_topic', "':'", dbt.cast('kafka_partition', dbt.type_string()), "':'",
            dbt.cast('kafka_offset', dbt.type_string()),
        ]), type_varchar()) }} as message_id,
        kafka_topic as topic,
        kafka_partition as partition_id,
        kafka_offset as message_offset,
        kafka_key as message_key,
        kafka_timestamp as published_at,
        event_id as status_change_id,
        {{ safe_cast('order_id', 'bigint') }} as order_id,
        status as order_status,
        {{ safe_cast('changed_at', 'timestamp') }} as changed_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

-- a replayed or re-loaded message (same topic, partition and offset) is kept once: its first load
first_load as (
    {{ latest_version(
        'renamed',
        'message_id',
        ['message_id', 'topic', 'partition_id', 'message_offset', 'message_key', 'published_at',
         'status_change_id', 'order_id', 'order_status', 'changed_at', '_extracted_at', '_dlt_load_id'],
        '_extracted_at asc, _dlt_load_id asc'
    ) }}
)

select * from first_load
