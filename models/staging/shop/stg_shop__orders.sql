{{ config(unique_key='order_id') }}

with

source_rows as (
    select * from {{ source('shop', 'orders') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        cast(order_id as integer) as order_id,
        cast(customer_id as integer) as customer_id,
        lower(status) as order_status,
        upper(currency) as currency_code,
        cast(ordered_at as timestamp) as ordered_at,
        cast(ordered_at as date) as order_date,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        cast(deleted_at as timestamp) as deleted_at,
        deleted_at is not null as is_deleted,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

latest as (
    {{ latest_version(
        'renamed',
        'order_id',
        ['order_id', 'customer_id', 'order_status', 'currency_code', 'ordered_at', 'order_date', 'created_at',
         'updated_at', 'deleted_at', 'is_deleted', '_extracted_at', '_dlt_load_id'],
        'updated_at desc, _extracted_at desc'
    ) }}
)

select * from latest
