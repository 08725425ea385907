with

events as (
    select * from {{ ref('stg_events__events') }}
),

with_previous as (
    select
        *,
        lag(event_at) over (partition by user_id order by event_at, event_id) as previous_event_at
    from events
),

flagged as (
    select
        *,
        case
            when previous_event_at is null then 1
            when {{ dbt.datediff('previous_event_at', 'event_at', 'second') }}
                >= {{ var('session_inactivity_minutes') }} * 60 then 1
            else 0
        end as is_session_start
    from with_previous
),

numbered as (
    select
        *,
        cast(sum(is_session_start) over (
            partition by user_id order by event_at, event_id rows between unbounded preceding and current row
        ) as bigint) as session_number
    from flagged
),

sessionized as (
    select
        event_id,
        user_id,
        session_number,
        {{ dbt.hash(dbt.concat([dbt.cast('user_id', dbt.type_string()), "'-'",
            dbt.cast('session_number', dbt.type_string())])) }} as session_key,
        event_type,
        event_at,
        event_date,
        page_path,
        product_id,
        event_value,
        _extracted_at
    from numbered
)

select * from sessionized
