with

quarantined as (
    select * from {{ ref('int_orders__quarantined') }}
),

order_items as (
    select * from {{ ref('stg_shop__order_items') }}
),

payments as (
    select * from {{ ref('stg_shop__payments') }}
),

children as (
    select
        'order_items' as source_table,
        order_items.order_id,
        {{ record_json(['order_item_id', 'order_id', 'product_id', 'quantity', 'unit_price', 'created_at',
            'updated_at'], 'order_items') }} as raw_record,
        order_items._extracted_at
    from order_items
    inner join quarantined on order_items.order_id = quarantined.order_id
    union all
    select
        'payments' as source_table,
        payments.order_id,
        {{ record_json(['payment_id', 'order_id', 'payment_method', 'amount', 'payment_status', 'created_at',
            'updated_at'], 'payments') }} as raw_record,
        payments._extracted_at
    from payments
    inner join quarantined on payments.order_id = quarantined.order_id
),

as_rejects as (
    select
        'shop_db' as source_name,
        source_table,
        'parent_quarantined' as reason_code,
        {{ dbt.concat(["'parent orders row '", dbt.cast('order_id', dbt.type_string()), "' is quarantined'"]) }}
            as reason,
        raw_record,
        {{ dbt.concat(["'stg_shop__'", 'source_table']) }} as source_location,
        _extracted_at
    from children
),

deduplicated as (
    {{ deduplicated_rejects('as_rejects') }}
)

select * from deduplicated
