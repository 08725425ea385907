{#- Incremental, because sessionizing is a window over every event of every user. A late or changed
    event can only change the sessions from the one it falls into onwards, so an incremental run
    re-sessionizes each touched user from the start of the stored session just before its earliest
    change and numbers the new sessions after the untouched ones. -#}
{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}

with

-- read several times: not materialized, or DuckDB copies every event first
events as {{ not_materialized() }} (
    select * from {{ ref('stg_events__events') }}
),

{% if is_incremental() %}
    stored as {{ not_materialized() }} (
        select * from {{ this }}
    ),

    -- events staging has written since this model's last build
    changed_events as (
        select
            event_id,
            user_id,
            event_at
        from events
        where _extracted_at > (select max(previous_build._watermark) from stored as previous_build)
    ),

    -- a changed event affects its new position and, when it was stored before, its old one
    changed_positions as (
        select
            user_id,
            event_at
        from changed_events
        union all
        select
            stored.user_id,
            stored.event_at
        from stored
        inner join changed_events on stored.event_id = changed_events.event_id
    ),

    earliest_changes as (
        select
            user_id,
            min(event_at) as changed_from
        from changed_positions
        group by user_id
    ),

    -- the stored session holding the user's last event before the change; null: start over
    resume_sessions as (
        select
            earliest_changes.user_id,
            max(stored.session_number) as resume_session_number
        from earliest_changes
        left join stored
            on
                earliest_changes.user_id = stored.user_id
                and earliest_changes.changed_from > stored.event_at
        group by earliest_changes.user_id
    ),

    resume_points as (
        select
            resume_sessions.user_id,
            coalesce(resume_sessions.resume_session_number - 1, 0) as sessions_before,
            min(stored.event_at) as resume_at
        from resume_sessions
        left join stored
            on
                resume_sessions.user_id = stored.user_id
                and resume_sessions.resume_session_number = stored.session_number
        group by resume_sessions.user_id, resume_sessions.resume_session_number
    ),

    events_in_scope as (
        select
            events.*,
            resume_points.sessions_before
        from events
        inner join resume_points on events.user_id = resume_points.user_id
        where resume_points.resume_at is null or events.event_at >= resume_points.resume_at
    ),
{% else %}
    events_in_scope as (
        select
            *,
            0 as sessions_before
        from events
    ),
{% endif %}

with_previous as (
    select
        *,
        lag(event_at) over (partition by user_id order by event_at, event_id) as previous_event_at
    from events_in_scope
),

flagged as (
    select
        *,
        case
            when previous_event_at is null then 1
            -- elapsed time, not second boundaries: a 1,799.2 s gap stays in the session
            when {{ epoch_seconds_between('previous_event_at', 'event_at') }}
                >= {{ var('session_inactivity_minutes') }} * 60 then 1
            else 0
        end as is_session_start
    from with_previous
),

numbered as (
    select
        *,
        sessions_before + cast(sum(is_session_start) over (
            partition by user_id order by event_at, event_id rows between unbounded preceding and current row
        ) as bigint) as session_number
    from flagged
),

sessionized as (
    select
        event_id,
        user_id,
        session_number,
        {{ dbt.cast(dbt.hash(dbt.concat([dbt.cast('user_id', dbt.type_string()), "'-'",
            dbt.cast('session_number', dbt.type_string())])), type_varchar()) }} as session_key,
        event_type,
        event_at,
        event_date,
        page_path,
        product_id,
        event_value,
        _extracted_at,
        (select max(all_events._extracted_at) from events as all_events) as _watermark
    from numbered
)

select * from sessionized
