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
        {{ safe_cast('order_id', 'integer') }} as order_id,
        {{ safe_cast('customer_id', 'integer') }} as customer_id,
        lower(status) as order_status,
        upper(currency) as currency_code,
        {{ safe_cast('ordered_at', 'timestamp') }} as ordered_at,
        {{ safe_cast('ordered_at', 'date') }} as order_date,
        {{ safe_cast('created_at', 'timestamp') }} as created_at,
        {{ safe_cast('updated_at', 'timestamp') }} as updated_at,
        {{ safe_cast('deleted_at', 'timestamp') }} as deleted_at,
        deleted_at is not null as is_deleted,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the row to stg_shop__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('orders')) }}
),

latest as (
    {{ latest_version(
        'renamed',
        'order_id',
        ['order_id', 'customer_id', 'order_status', 'currency_code', 'ordered_at', 'order_date', 'created_at',
         'updated_at', 'deleted_at', 'is_deleted', '_extracted_at', '_dlt_load_id'],
        '_extracted_at desc, _dlt_load_id desc'
    ) }}
)

select * from latest
