{{ config(materialized='incremental', unique_key='revenue_date', incremental_strategy='delete+insert') }}

with

orders as (
    select * from {{ ref('int_orders__totals') }}
),

{% if is_incremental() %}
    touched as (
        {{ touched_dates('order_date', [ref('int_orders__totals')]) }}
    ),
{% endif %}

orders_in_scope as (
    select * from orders
    {% if is_incremental() %}
        where order_date in (select touched.touched_date from touched)
    {% endif %}
),

daily as (
    select
        order_date as revenue_date,
        cast(sum(case when not is_deleted then 1 else 0 end) as bigint) as orders_placed,
        cast(sum(case when not is_deleted and order_status = 'cancelled' then 1 else 0 end) as bigint)
            as orders_cancelled,
        count(distinct case when not is_deleted then customer_id end) as customers,
        cast(sum(case when not is_deleted then items_quantity else 0 end) as bigint) as units_sold,
        sum(case when not is_deleted then order_amount else 0 end) as gross_revenue,
        sum(case when not is_deleted and order_status <> 'cancelled' then order_amount else 0 end) as net_revenue,
        sum(case when not is_deleted then paid_amount else 0 end) as paid_amount
    -- deleted orders keep their date's row (so an incremental run rewrites it) but count in no figure
    from orders_in_scope
    group by order_date
),

final as (
    select
        revenue_date,
        orders_placed,
        orders_cancelled,
        customers,
        units_sold,
        cast(gross_revenue as decimal(14, 2)) as gross_revenue,
        cast(net_revenue as decimal(14, 2)) as net_revenue,
        cast(paid_amount as decimal(14, 2)) as paid_amount,
        cast(net_revenue / nullif(orders_placed - orders_cancelled, 0) as decimal(14, 2)) as average_order_value,
        (select max(all_orders._extracted_at) from orders as all_orders) as _watermark
    from daily
)

select * from final
