with

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

countries as (
    select * from {{ ref('countries') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

customer_orders as (
    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as lifetime_orders,
        sum(case when order_status <> 'cancelled' then order_amount else 0 end) as lifetime_revenue
    from orders
    -- deleted orders count in no aggregate
    where not is_deleted
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.email,
        customers.first_name,
        customers.last_name,
        customers.country_code,
        countries.country_name,
        countries.region,
        customers.customer_tier,
        customers.loyalty_points,
        customers.created_at,
        customers.is_deleted,
        customer_orders.first_order_at,
        customer_orders.last_order_at,
        coalesce(customer_orders.lifetime_orders, 0) as lifetime_orders,
        cast(coalesce(customer_orders.lifetime_revenue, 0) as decimal(14, 2)) as lifetime_revenue
    from customers
    left join countries on customers.country_code = countries.country_code
    left join customer_orders on customers.customer_id = customer_orders.customer_id
)

select * from final
