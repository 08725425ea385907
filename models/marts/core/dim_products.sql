with

products as (
    select * from {{ ref('stg_shop__products') }}
),

final as (
    select
        product_id,
        sku,
        product_name,
        product_category,
        unit_price,
        created_at,
        is_deleted
    from products
)

select * from final
