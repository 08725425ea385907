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
        cast(product_id as integer) as product_id,
        sku,
        name as product_name,
        lower(category) as product_category,
        cast(price as decimal(12, 2)) as unit_price,
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
        'product_id',
        ['product_id', 'sku', 'product_name', 'product_category', 'unit_price', 'created_at', 'updated_at',
         'deleted_at', 'is_deleted', '_extracted_at', '_dlt_load_id'],
        'updated_at desc, _extracted_at desc'
    ) }}
)

select * from latest
