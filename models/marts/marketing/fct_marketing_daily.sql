{#- Incremental on touched dates (delete+insert by spend_date). A restated file can remove a
    (spend_date, channel) altogether, which no recomputed date would overwrite: the pre-hook deletes
    the stored rows whose (spend_date, channel) no longer has any spend in staging. -#}
{{ config(
    materialized='incremental',
    unique_key='spend_date',
    incremental_strategy='delete+insert',
    pre_hook="{% if is_incremental() %}{{ delete_rows(this, '(spend_date, channel) not in (select spend_date, channel from ' ~ ref('stg_marketing__spend') ~ ')') }}{% endif %}",
) }}

with

spend as (
    select * from {{ ref('stg_marketing__spend') }}
),

orders as (
    select * from {{ ref('int_orders__totals') }}
),

channels as (
    select * from {{ ref('marketing_channels') }}
),

{% if is_incremental() %}
    touched as (
        {{ touched_dates('spend_date', [ref('stg_marketing__spend')]) }}
        union
        select order_date as touched_date
        from orders
        where _extracted_at > (select max(previous_build._watermark) from {{ this }} as previous_build)
    ),
{% endif %}

spend_in_scope as (
    select
        *,
        -- two files with the same (spend_date, channel, campaign): the most recently loaded file wins
        row_number() over (
            partition by spend_date, channel, campaign order by _extracted_at desc, _dlt_load_id desc, file_name desc
        ) as file_rank
    from spend
    {% if is_incremental() %}
        where spend_date in (select touched.touched_date from touched)
    {% endif %}
),

channel_spend as (
    select
        spend_date,
        channel,
        sum(spend_amount) as spend_amount,
        cast(sum(impressions) as bigint) as impressions,
        cast(sum(clicks) as bigint) as clicks,
        cast(sum(conversions) as bigint) as conversions
    from spend_in_scope
    where file_rank = 1
    group by spend_date, channel
),

day_spend as (
    select
        spend_date,
        sum(spend_amount) as total_spend
    from channel_spend
    group by spend_date
),

day_revenue as (
    select
        order_date,
        sum(case when order_status <> 'cancelled' and not is_deleted then order_amount else 0 end) as net_revenue
    from orders
    group by order_date
),

final as (
    select
        channel_spend.spend_date,
        channel_spend.channel,
        channels.channel_group,
        cast(channel_spend.spend_amount as decimal(14, 2)) as spend_amount,
        channel_spend.impressions,
        channel_spend.clicks,
        channel_spend.conversions,
        cast(coalesce(day_revenue.net_revenue, 0) as decimal(14, 2)) as day_net_revenue,
        cast(channel_spend.spend_amount / nullif(day_spend.total_spend, 0) as decimal(9, 6)) as spend_share,
        -- spend-weighted allocation of the day's revenue; no click-level attribution in the sources
        cast(
            coalesce(day_revenue.net_revenue, 0) * channel_spend.spend_amount / nullif(day_spend.total_spend, 0)
            as decimal(14, 2)
        ) as allocated_revenue,
        (select max(all_spend._extracted_at) from spend as all_spend) as _watermark
    from channel_spend
    inner join day_spend on channel_spend.spend_date = day_spend.spend_date
    left join day_revenue on channel_spend.spend_date = day_revenue.order_date
    left join channels on channel_spend.channel = channels.channel
)

select * from final
