with

order_items as (
    select * from {{ ref('stg_shop__order_items') }}
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

products as (
    select * from {{ ref('stg_shop__products') }}
),

final as (
    select
        order_items.order_item_id,
        order_items.order_id,
        orders.customer_id,
        order_items.product_id,
        products.product_category,
        orders.order_date,
        orders.order_status,
        order_items.quantity,
        order_items.unit_price,
        order_items.line_amount,
        orders.is_deleted
    from order_items
    -- lines of an order that is not in staging (quarantined in the rejects) are left out
    inner join orders on order_items.order_id = orders.order_id
    left join products on order_items.product_id = products.product_id
)

select * from final
