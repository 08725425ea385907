with

events as (
    select * from {{ ref('int_events__sessionized') }}
),

sessions as (
    select
        session_key,
        user_id,
        session_number,
        min(event_at) as session_start_at,
        max(event_at) as session_end_at,
        count(*) as event_count,
        cast(sum(case when event_type = 'page_view' then 1 else 0 end) as bigint) as page_views,
        cast(sum(case when event_type = 'add_to_cart' then 1 else 0 end) as bigint) as add_to_carts,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as bigint) as purchases
    from events
    group by session_key, user_id, session_number
),

final as (
    select
        session_key,
        user_id,
        session_number,
        session_start_at,
        session_end_at,
        cast(session_start_at as date) as session_date,
        {{ dbt.datediff('session_start_at', 'session_end_at', 'second') }} as duration_seconds,  -- noqa: LT05
        event_count,
        page_views,
        add_to_carts,
        purchases,
        purchases > 0 as has_purchase
    from sessions
)

select * from final
