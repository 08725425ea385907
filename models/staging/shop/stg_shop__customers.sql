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
        cast(customer_id as integer) as customer_id,
        lower(email) as email,
        first_name,
        last_name,
        upper(country_code) as country_code,
        lower(tier) as customer_tier,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        cast(deleted_at as timestamp) as deleted_at,
        deleted_at is not null as is_deleted,
        cast({{ column_or_null(source('shop', 'customers'), 'loyalty_points') }} as integer) as loyalty_points,
        _extracted_at,
        _dlt_load_id
    from source_rows
),

latest as (
    {{ latest_version(
        'renamed',
        'customer_id',
        ['customer_id', 'email', 'first_name', 'last_name', 'country_code', 'customer_tier', 'created_at',
         'updated_at', 'deleted_at', 'is_deleted', 'loyalty_points', '_extracted_at', '_dlt_load_id'],
        'updated_at desc, _extracted_at desc',
        drift_columns=['loyalty_points']
    ) }}
)

select * from latest
