{{ config(unique_key='payment_id') }}

with

source_rows as (
    select * from {{ source('shop', 'payments') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ safe_cast('payment_id', 'integer') }} as payment_id,
        {{ safe_cast('order_id', 'integer') }} as order_id,
        lower(method) as payment_method,
        {{ safe_cast('amount', 'decimal(12, 2)') }} as amount,
        lower(status) as payment_status,
        {{ safe_cast('created_at', 'timestamp') }} as created_at,
        {{ safe_cast('updated_at', 'timestamp') }} as updated_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the row to stg_shop__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('payments')) }}
),

latest as (
    {{ latest_version(
        'renamed',
        'payment_id',
        ['payment_id', 'order_id', 'payment_method', 'amount', 'payment_status', 'created_at', 'updated_at',
         '_extracted_at', '_dlt_load_id'],
        '_extracted_at desc, _dlt_load_id desc'
    ) }}
)

select * from latest
