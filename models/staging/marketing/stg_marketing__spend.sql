{{ config(unique_key='spend_key') }}

with

source_rows as (
    select * from {{ source('marketing', 'spend') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ dbt.hash(dbt.concat(['spend_date', "'|'", 'channel', "'|'", 'campaign'])) }} as spend_key,
        cast(spend_date as date) as spend_date,
        lower(channel) as channel,
        lower(campaign) as campaign,
        cast(spend as decimal(12, 2)) as spend_amount,
        upper(currency) as currency_code,
        cast(impressions as integer) as impressions,
        cast(clicks as integer) as clicks,
        cast({{ column_or_null(source('marketing', 'spend'), 'conversions') }} as integer) as conversions,
        _file_name as file_name,
        cast(_file_modified_at as timestamp) as file_modified_at,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

-- a re-dropped (restated) file replaces the rows of the earlier version of that day
latest_file_version as (
    {{ latest_version(
        'renamed',
        'spend_key',
        ['spend_key', 'spend_date', 'channel', 'campaign', 'spend_amount', 'currency_code', 'impressions',
         'clicks', 'conversions', 'file_name', 'file_modified_at', '_extracted_at', '_dlt_load_id'],
        'file_modified_at desc, _extracted_at desc',
        drift_columns=['conversions']
    ) }}
)

select * from latest_file_version
