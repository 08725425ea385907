{{ config(unique_key='order_item_id') }}

with

source_rows as (
    select * from {{ source('shop', 'order_items') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ safe_cast('order_item_id', 'integer') }} as order_item_id,
        {{ safe_cast('order_id', 'integer') }} as order_id,
        {{ safe_cast('product_id', 'integer') }} as product_id,
        {{ safe_cast('quantity', 'integer') }} as quantity,
        {{ safe_cast('unit_price', 'decimal(12, 2)') }} as unit_price,
        {{ safe_cast('quantity * unit_price', 'decimal(12, 2)') }} as line_amount,
        {{ safe_cast('created_at', 'timestamp') }} as created_at,
        {{ safe_cast('updated_at', 'timestamp') }} as updated_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the row to stg_shop__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('order_items')) }}
),

latest as (
    {{ latest_version(
        'renamed',
        'order_item_id',
        ['order_item_id', 'order_id', 'product_id', 'quantity', 'unit_price', 'line_amount', 'created_at',
         'updated_at', '_extracted_at', '_dlt_load_id'],
        '_extracted_at desc, _dlt_load_id desc'
    ) }}
)

select * from latest
