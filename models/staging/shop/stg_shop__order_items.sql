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
        cast(order_item_id as integer) as order_item_id,
        cast(order_id as integer) as order_id,
        cast(product_id as integer) as product_id,
        cast(quantity as integer) as quantity,
        cast(unit_price as decimal(12, 2)) as unit_price,
        cast(quantity * unit_price as decimal(12, 2)) as line_amount,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

latest as (
    {{ latest_version(
        'renamed',
        'order_item_id',
        ['order_item_id', 'order_id', 'product_id', 'quantity', 'unit_price', 'line_amount', 'created_at',
         'updated_at', '_extracted_at', '_dlt_load_id'],
        'updated_at desc, _extracted_at desc'
    ) }}
)

select * from latest
