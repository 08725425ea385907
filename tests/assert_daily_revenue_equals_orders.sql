-- Reconciliation: the incremental revenue mart equals the orders it summarises, date by date.
with

daily_revenue as (
    select * from {{ ref('fct_daily_revenue') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

from_orders as (
    select
        order_date,
        -- deleted orders count in no aggregate (their date keeps a row)
        sum(case when not is_deleted then 1 else 0 end) as orders_placed,
        sum(case when not is_deleted then order_amount else 0 end) as gross_revenue,
        sum(case when not is_cancelled and not is_deleted then order_amount else 0 end) as net_revenue
    from orders
    group by order_date
),

mismatches as (
    select
        coalesce(daily_revenue.revenue_date, from_orders.order_date) as revenue_date,
        daily_revenue.gross_revenue as mart_gross_revenue,
        from_orders.gross_revenue as orders_gross_revenue
    from daily_revenue
    full outer join from_orders on daily_revenue.revenue_date = from_orders.order_date
    where
        daily_revenue.revenue_date is null
        or from_orders.order_date is null
        or daily_revenue.orders_placed <> from_orders.orders_placed
        or daily_revenue.gross_revenue <> from_orders.gross_revenue
        or daily_revenue.net_revenue <> from_orders.net_revenue
)

select * from mismatches
