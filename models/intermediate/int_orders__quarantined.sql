with

shop_rejects as (
    select * from {{ ref('stg_shop__rejects') }}
),

cast_rejects as (
    select * from {{ ref('stg_shop__cast_rejects') }}
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

rejected_orders as (
    select raw_record from shop_rejects
    where source_table = 'orders'
    union all
    select raw_record from cast_rejects
    where source_table = 'orders'
),

rejected_order_ids as (
    select distinct {{ safe_cast(json_extract_string('raw_record', 'order_id'), 'bigint') }} as order_id
    from rejected_orders
),

-- an order with a valid version in staging is not quarantined, whatever else was rejected
quarantined as (
    select rejected_order_ids.order_id
    from rejected_order_ids
    left join orders on rejected_order_ids.order_id = orders.order_id
    where rejected_order_ids.order_id is not null and orders.order_id is null
)

select * from quarantined
