{% macro latest_version(from_cte, key, columns, order_by, drift_columns=[]) %}
    {#- Latest version per key of the rows in `from_cte`. In incremental runs the version already
        stored in this model competes too, so a version re-extracted through the lag window can never
        overwrite a newer one: the result equals deduplicating the whole raw history. Keys whose
        stored version still wins (it wins ties) are left out, so they are not rewritten.
        `drift_columns` may not exist in this model yet (a source column that appeared later). -#}
    select
        {% for column in columns %}{{ column }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from (
        select
            candidates.*,
            row_number() over (
                partition by {{ key }} order by {{ order_by }}, is_stored_version desc
            ) as version_rank
        from (
            select
                {% for column in columns %}{{ column }},{% endfor %}
                false as is_stored_version
            from {{ from_cte }}
            {% if is_incremental() %}
                union all
                select
                    {% for column in columns %}
                        {%- if column in drift_columns %}{{ column_or_null(this, column) }} as {{ column }}{% else %}{{ column }}{% endif -%}
                        ,
                    {% endfor %}
                    true as is_stored_version
                from {{ this }}
                where {{ key }} in (select {{ key }} from {{ from_cte }})
            {% endif %}
        ) as candidates
    ) as ranked
    where version_rank = 1 {% if is_incremental() %}and not is_stored_version{% endif %}
{% endmacro %}
