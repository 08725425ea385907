with

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

order_items as (
    select * from {{ ref('stg_shop__order_items') }}
),

payments as (
    select * from {{ ref('stg_shop__payments') }}
),

item_totals as (
    select
        order_id,
        count(*) as item_count,
        cast(sum(quantity) as bigint) as items_quantity,
        sum(line_amount) as order_amount,
        max(_extracted_at) as items_extracted_at
    from order_items
    group by order_id
),

payment_totals as (
    select
        order_id,
        sum(case when payment_status = 'paid' then amount else 0 end) as paid_amount,
        sum(case when payment_status = 'refunded' then amount else 0 end) as refunded_amount,
        max(_extracted_at) as payments_extracted_at
    from payments
    group by order_id
),

order_totals as (
    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        orders.ordered_at,
        orders.order_status,
        orders.currency_code,
        orders.is_deleted,
        orders.updated_at,
        coalesce(item_totals.item_count, 0) as item_count,
        coalesce(item_totals.items_quantity, 0) as items_quantity,
        cast(coalesce(item_totals.order_amount, 0) as decimal(12, 2)) as order_amount,
        cast(coalesce(payment_totals.paid_amount, 0) as decimal(12, 2)) as paid_amount,
        cast(coalesce(payment_totals.refunded_amount, 0) as decimal(12, 2)) as refunded_amount,
        -- the newest extraction of anything that makes up the order: drives touched-date recomputes
        greatest(
            orders._extracted_at,
            coalesce(item_totals.items_extracted_at, orders._extracted_at),
            coalesce(payment_totals.payments_extracted_at, orders._extracted_at)
        ) as _extracted_at
    from orders
    left join item_totals on orders.order_id = item_totals.order_id
    left join payment_totals on orders.order_id = payment_totals.order_id
)

select * from order_totals
