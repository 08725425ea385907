{#- Incremental per user: a touched user's sessions can merge, split and renumber, so all of them
    are rewritten (delete+insert by user_id) from the sessionized events. -#}
{{ config(materialized='incremental', unique_key='user_id', incremental_strategy='delete+insert') }}

with

-- read several times: not materialized, or DuckDB copies every event first
events as {{ not_materialized() }} (
    select * from {{ ref('int_events__sessionized') }}
),

{% if is_incremental() %}
    -- users with sessionized events written since this model's last build
    touched_users as (
        select distinct touched.user_id
        from events as touched
        where touched._watermark > (select max(previous_build._watermark) from {{ this }} as previous_build)
    ),
{% endif %}

events_in_scope as (
    select * from events
    {% if is_incremental() %}
        where user_id in (select touched_users.user_id from touched_users)
    {% endif %}
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
    from events_in_scope
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
        cast(floor({{ epoch_seconds_between('session_start_at', 'session_end_at') }}) as bigint) as duration_seconds,
        event_count,
        page_views,
        add_to_carts,
        purchases,
        purchases > 0 as has_purchase,
        (select max(all_events._watermark) from events as all_events) as _watermark
    from sessions
)

select * from final
