-- Reconciliation: every order's amount equals the sum of its lines.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

order_items as (
    select * from {{ ref('fct_order_items') }}
),

line_totals as (
    select
        order_id,
        sum(line_amount) as lines_amount
    from order_items
    group by order_id
),

mismatches as (
    select
        orders.order_id,
        orders.order_amount,
        coalesce(line_totals.lines_amount, 0) as lines_amount
    from orders
    left join line_totals on orders.order_id = line_totals.order_id
    where orders.order_amount <> coalesce(line_totals.lines_amount, 0)
)

select * from mismatches
