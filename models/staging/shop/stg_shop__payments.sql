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
        cast(payment_id as integer) as payment_id,
        cast(order_id as integer) as order_id,
        lower(method) as payment_method,
        cast(amount as decimal(12, 2)) as amount,
        lower(status) as payment_status,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

latest as (
    {{ latest_version(
        'renamed',
        'payment_id',
        ['payment_id', 'order_id', 'payment_method', 'amount', 'payment_status', 'created_at', 'updated_at',
         '_extracted_at', '_dlt_load_id'],
        'updated_at desc, _extracted_at desc'
    ) }}
)

select * from latest
