{{ config(unique_key='customer_id') }}

with

source_rows as (
    select * from {{ source('shop', 'customers') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_build() }}
    {% endif %}
),

renamed as (
    select
        {{ safe_cast('customer_id', 'integer') }} as customer_id,
        lower(email) as email,
        first_name,
        last_name,
        upper(country_code) as country_code,
        lower(tier) as customer_tier,
        {{ safe_cast('created_at', 'timestamp') }} as created_at,
        {{ safe_cast('updated_at', 'timestamp') }} as updated_at,
        {{ safe_cast('deleted_at', 'timestamp') }} as deleted_at,
        deleted_at is not null as is_deleted,
        {{ safe_cast(column_or_null(source('shop', 'customers'), 'loyalty_points'), 'integer') }} as loyalty_points,
        _extracted_at,
        _dlt_load_id
    from source_rows
    -- a value that does not fit its type sends the row to stg_shop__cast_rejects instead
    where not {{ any_cast_failed(cast_checks('customers')) }}
),

latest as (
    {{ latest_version(
        'renamed',
        'customer_id',
        ['customer_id', 'email', 'first_name', 'last_name', 'country_code', 'customer_tier', 'created_at',
         'updated_at', 'deleted_at', 'is_deleted', 'loyalty_points', '_extracted_at', '_dlt_load_id'],
        '_extracted_at desc, _dlt_load_id desc',
        drift_columns=['loyalty_points']
    ) }}
)

select * from latest
