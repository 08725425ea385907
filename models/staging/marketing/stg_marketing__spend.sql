{#- Exactly the rows of the newest version of every spend file. A file version is the rows of one file
    name from one extraction (the newest `_extracted_at`, ties: the later load); a restated file
    replaces the whole contribution of its earlier version, rows it no longer holds disappear.
    Incremental: every file with a newly loaded version is rebuilt from all of its raw rows and
    replaces that file's rows (delete+insert by file_name). -#}
{{ config(unique_key='file_name', incremental_strategy='delete+insert') }}

with

source_rows as (
    select * from {{ source('marketing', 'spend') }}
),

{% if is_incremental() %}
    changed_files as (
        select distinct _file_name
        from source_rows
        where {{ loaded_since_last_build() }}
    ),
{% endif %}

files_in_scope as (
    select * from source_rows
    {% if is_incremental() %}
        where _file_name in (select changed_files._file_name from changed_files)
    {% endif %}
),

ranked_versions as (
    select
        *,
        dense_rank() over (
            partition by _file_name order by _extracted_at desc, _dlt_load_id desc
        ) as version_rank
    from files_in_scope
),

newest_version as (
    select * from ranked_versions
    where version_rank = 1
),

renamed as (
    select
        {{ dbt.hash(dbt.concat(['_file_name', "'|'", 'spend_date', "'|'", 'channel', "'|'", 'campaign'])) }}
            as spend_key,
        {{ safe_cast('spend_date', 'date') }} as spend_date,
        {{ dbt.cast('lower(channel)', type_varchar()) }} as channel,
        lower(campaign) as campaign,
        {{ safe_cast('spend', 'decimal(12, 2)') }} as spend_amount,
        upper(currency) as currency_code,
        {{ safe_cast('impressions', 'bigint') }} as impressions,
        {{ safe_cast('clicks', 'bigint') }} as clicks,
        {{ safe_cast(column_or_null(source('marketing', 'spend'), 'conversions'), 'bigint') }} as conversions,
        _file_name as file_name,
        _file_line as file_line,
        cast(_file_modified_at as timestamp) as file_modified_at,
        _extracted_at,
        _dlt_load_id
    from newest_version
    -- a value that does not fit its type sends the row to stg_marketing__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('spend')) }}
),

-- within one version of a file, a repeated (spend_date, channel, campaign) line: the last line wins
last_line as (
    select
        *,
        row_number() over (partition by spend_key order by file_line desc) as line_rank
    from renamed
),

final as (
    select
        spend_key,
        spend_date,
        channel,
        campaign,
        spend_amount,
        currency_code,
        impressions,
        clicks,
        conversions,
        file_name,
        file_modified_at,
        _extracted_at,
        _dlt_load_id
    from last_line
    where line_rank = 1
)

select * from final
