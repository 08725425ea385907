{{ config(unique_key='product_id') }}

with

source_rows as (
    select * from {{ source('shop', 'products') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ safe_cast('product_id', 'integer') }} as product_id,
        sku,
        name as product_name,
        lower(category) as product_category,
        {{ safe_cast('price', 'decimal(12, 2)') }} as unit_price,
        {{ safe_cast('created_at', 'timestamp') }} as created_at,
        {{ safe_cast('updated_at', 'timestamp') }} as updated_at,
        {{ safe_cast('deleted_at', 'timestamp') }} as deleted_at,
        deleted_at is not null as is_deleted,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the row to stg_shop__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('products')) }}
),

latest as (
    {{ latest_version(
        'renamed',
        'product_id',
        ['product_id', 'sku', 'product_name', 'product_category', 'unit_price', 'created_at', 'updated_at',
         'deleted_at', 'is_deleted', '_extracted_at', '_dlt_load_id'],
        '_extracted_at desc, _dlt_load_id desc'
    ) }}
)

select * from latest
