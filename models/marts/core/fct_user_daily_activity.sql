{{ config(materialized='incremental', unique_key='activity_date', incremental_strategy='delete+insert') }}

with

events as (
    select * from {{ ref('stg_events__events') }}
),

{% if is_incremental() %}
    touched as (
        {{ touched_dates('event_date', [ref('stg_events__events')]) }}
    ),
{% endif %}

events_in_scope as (
    select * from events
    {% if is_incremental() %}
        where event_date in (select touched.touched_date from touched)
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
