with

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

-- deleted orders count in no feature (as_of_date included)
orders as (
    select * from {{ ref('fct_orders') }}
    where not is_deleted
),

events as (
    select * from {{ ref('stg_events__events') }}
),

-- features are computed as of the last day with orders, so a rebuild is reproducible
as_of as (
    select max(order_date) as as_of_date from orders
),

order_features as (
    select
        orders.customer_id,
        cast(
            sum(
                case when orders.order_date > {{ dbt.dateadd('day', -7, 'as_of.as_of_date') }} then 1 else 0 end
            ) as bigint
        )
            as orders_7d,
        cast(
            sum(
                case when orders.order_date > {{ dbt.dateadd('day', -30, 'as_of.as_of_date') }} then 1 else 0 end
            ) as bigint
        )
            as orders_30d,
        sum(
            case
                when orders.order_date > {{ dbt.dateadd('day', -30, 'as_of.as_of_date') }}
                    and orders.order_status <> 'cancelled' then orders.order_amount
                else 0
            end
        ) as revenue_30d,
        count(*) as lifetime_orders,
        max(orders.order_date) as last_order_date
    from orders
    cross join as_of
    where orders.order_date <= as_of.as_of_date
    group by orders.customer_id
),

event_features as (
    select
        events.user_id as customer_id,
        cast(
            sum(
                case when events.event_date > {{ dbt.dateadd('day', -7, 'as_of.as_of_date') }} then 1 else 0 end
            ) as bigint
        )
            as events_7d,
        cast(
            sum(
                case when events.event_date > {{ dbt.dateadd('day', -30, 'as_of.as_of_date') }} then 1 else 0 end
            ) as bigint
        )
            as events_30d,
        cast(sum(
            case
                when events.event_date > {{ dbt.dateadd('day', -30, 'as_of.as_of_date') }}
                    and events.event_type = 'add_to_cart' then 1
                else 0
            end
        ) as bigint) as add_to_carts_30d
    from events
    cross join as_of
    where events.event_date <= as_of.as_of_date
    group by events.user_id
),

final as (
    select
        customers.customer_id,
        as_of.as_of_date,
        customers.customer_tier,
        customers.country_code,
        coalesce(order_features.orders_7d, 0) as orders_7d,
        coalesce(order_features.orders_30d, 0) as orders_30d,
        cast(coalesce(order_features.revenue_30d, 0) as decimal(14, 2)) as revenue_30d,
        coalesce(order_features.lifetime_orders, 0) as lifetime_orders,
        coalesce(event_features.events_7d, 0) as events_7d,
        coalesce(event_features.events_30d, 0) as events_30d,
        coalesce(event_features.add_to_carts_30d, 0) as add_to_carts_30d,
        cast({{ dbt.datediff('order_features.last_order_date', 'as_of.as_of_date', 'day') }} as bigint)  -- noqa: LT05
            as days_since_last_order
    from customers
    cross join as_of
    left join order_features on customers.customer_id = order_features.customer_id
    left join event_features on customers.customer_id = event_features.customer_id
    where not customers.is_deleted
)

select * from final
