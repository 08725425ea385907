with

orders as (
    select * from {{ ref('int_orders__totals') }}
),

final as (
    select
        order_id,
        customer_id,
        order_date,
        ordered_at,
        order_status,
        currency_code,
        item_count,
        items_quantity,
        order_amount,
        paid_amount,
        refunded_amount,
        order_status = 'cancelled' as is_cancelled,
        is_deleted,
        updated_at
    from orders
)

select * from final
