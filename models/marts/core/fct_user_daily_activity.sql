{#- Incremental per user-day: a row depends only on that user's events of that day, so an incremental
    run rewrites exactly the user-days with newly loaded events (however late), plus every user-day of
    the safety-net dates (lookback_days, backfill). -#}
{{ config(
    materialized='incremental',
    unique_key=['user_id', 'activity_date'],
    incremental_strategy='delete+insert',
) }}

with

-- read several times: not materialized, or DuckDB copies every event first
events as {{ not_materialized() }} (
    select * from {{ ref('stg_events__events') }}
),

{% if is_incremental() %}
    touched_user_days as (
        select
            user_id,
            event_date
        from events
        where _extracted_at > (select max(previous_build._watermark) from {{ this }} as previous_build)
        union
        select
            user_id,
            event_date
        from events
        where event_date in ({{ safety_net_dates('event_date', ref('stg_events__events')) }})
    ),
{% endif %}

events_in_scope as (
    select events.* from events
    {% if is_incremental() %}
        inner join touched_user_days
            on events.user_id = touched_user_days.user_id and events.event_date = touched_user_days.event_date
    {% endif %}
),

daily as (
    select
        user_id,
        event_date as activity_date,
        count(*) as event_count,
        cast(sum(case when event_type = 'page_view' then 1 else 0 end) as bigint) as page_views,
        cast(sum(case when event_type = 'click' then 1 else 0 end) as bigint) as clicks,
        cast(sum(case when event_type = 'add_to_cart' then 1 else 0 end) as bigint) as add_to_carts,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as bigint) as purchases,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from events_in_scope
    group by user_id, event_date
),

final as (
    select
        user_id,
        activity_date,
        event_count,
        page_views,
        clicks,
        add_to_carts,
        purchases,
        first_event_at,
        last_event_at,
        (select max(all_events._extracted_at) from events as all_events) as _watermark
    from daily
)

select * from final
