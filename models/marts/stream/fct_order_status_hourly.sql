{{ config(materialized='incremental', unique_key='window_start', incremental_strategy='delete+insert') }}

with

status_changes as (
    select * from {{ ref('stg_stream__order_status') }}
),

windowed as (
    select
        *,
        {{ dbt.date_trunc('hour', 'changed_at') }} as window_start
    from status_changes
    where changed_at is not null and order_status is not null
),

{% if is_incremental() %}
    -- every window with a message loaded after this mart's watermark (a late message re-opens its window)
    touched as (
        {{ touched_dates('window_start', ['windowed']) }}
    ),
{% endif %}

changes_in_scope as (
    select * from windowed
    {% if is_incremental() %}
        where window_start in (select touched.touched_date from touched)
    {% endif %}
),

hourly as (
    select
        window_start,
        order_status,
        count(distinct status_change_id) as status_changes,
        count(distinct order_id) as orders,
        count(*) as messages
    from changes_in_scope
    group by window_start, order_status
),

final as (
    select
        {{ dbt.cast(dbt.concat([dbt.cast('window_start', dbt.type_string()), "'|'", 'order_status']), type_varchar()) }}
            as window_key,
        cast(window_start as timestamp) as window_start,
        cast({{ dbt.dateadd('hour', 1, 'window_start') }} as timestamp) as window_end,
        order_status,
        cast(status_changes as bigint) as status_changes,
        cast(orders as bigint) as orders,
        cast(messages as bigint) as messages,
        (select max(all_changes._extracted_at) from status_changes as all_changes) as _watermark
    from hourly
)

select * from final
