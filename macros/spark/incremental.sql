{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {#- dbt-spark's check of the incremental strategy, for the strategies Spark runs on plain parquet
        tables: `delete+insert` (the strategy our keyed incremental models use on every engine, done by
        `staged_delete_insert`), `append` and `insert_overwrite`. dbt-spark's incremental materialization
        calls this macro and `dbt_spark_get_incremental_sql` by name (they are not dispatched), so the
        project's macros of the same names take their place on Spark; other adapters never call them.
        `merge` needs Delta, Iceberg or Hudi, whose jars this project does not depend on.
        A model with a unique_key and no strategy gets `delete+insert`, as on DuckDB and PostgreSQL (dbt-spark
        would append, duplicating every updated key). -#}
    {%- if config.get('incremental_strategy') is none and config.get('unique_key') -%}
        {%- set raw_strategy = 'delete+insert' -%}
    {%- endif -%}
    {%- if raw_strategy not in ['delete+insert', 'append', 'insert_overwrite'] -%}
        {%- do exceptions.raise_compiler_error(
            'incremental strategy ' ~ raw_strategy ~ ' is not supported on Spark parquet tables here: '
            ~ 'use delete+insert, append or insert_overwrite'
        ) -%}
    {%- endif -%}
    {{ return(raw_strategy) }}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {#- dbt-spark's incremental SQL for the strategies above (see dbt_spark_validate_get_incremental_strategy). -#}
    {%- if strategy == 'delete+insert' -%}
        {{ return(staged_delete_insert(source, target, unique_key)) }}
    {%- elif strategy == 'append' -%}
        {{ return(get_insert_into_sql(source, target)) }}
    {%- else -%}
        {{ return(get_insert_overwrite_sql(source, target, existing)) }}
    {%- endif -%}
{% endmacro %}

{% macro staged_delete_insert(source, target, unique_key) %}
    {#- delete+insert on a plain parquet table, which has no DELETE or MERGE (those need Delta, Iceberg or
        Hudi): the table's rows whose key is not in `source`, plus `source`'s rows, replace the table's
        content through `staged_overwrite` (`source` - the model's new rows - reads `target` itself).
        Returns the final statement. -#}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    {% do staged_overwrite(
        target,
        'select ' ~ columns ~ ' from ' ~ target ~ ' as stored left anti join ' ~ source ~ ' as new_rows on '
        ~ staged_key_match(keys)
        ~ ' union all select ' ~ columns ~ ' from ' ~ source
    ) %}
    {{ return('refresh table ' ~ target) }}
{% endmacro %}

{% macro staged_overwrite(relation, select_sql) %}
    {#- Replaces the content of the parquet table `relation` with the rows of `select_sql`, which may read
        `relation` itself: Spark refuses to overwrite a table that the same statement reads, so the rows are
        first written to a real table `<relation>__dbt_staged`, then `insert overwrite` copies them into
        `relation` (same columns in the same order) and the staging table is dropped. -#}
    {%- set staged = relation.incorporate(path={'identifier': relation.identifier ~ '__dbt_staged'}) -%}
    {% do run_query('drop table if exists ' ~ staged) %}
    {% do run_query('create table ' ~ staged ~ ' using parquet as ' ~ select_sql) %}
    {% do run_query('insert overwrite table ' ~ relation ~ ' select * from ' ~ staged) %}
    {% do run_query('drop table if exists ' ~ staged) %}
{% endmacro %}

{% macro staged_key_match(keys) -%}
    {%- for key in keys -%}stored.{{ key }} = new_rows.{{ key }}{{ ' and ' if not loop.last }}{%- endfor -%}
{%- endmacro %}

{% macro delete_rows(relation, condition) %}
    {#- `delete from relation where condition`, as a hook. Dispatched: default the DELETE statement; spark
        (plain parquet tables have no DELETE) keeps the other rows with `staged_overwrite`, like
        `staged_delete_insert`. -#}
    {{ return(adapter.dispatch('delete_rows')(relation, condition)) }}
{% endmacro %}

{% macro default__delete_rows(relation, condition) -%}
    delete from {{ relation }} where {{ condition }}
{%- endmacro %}

{% macro spark__delete_rows(relation, condition) %}
    {% if execute %}
        {% do staged_overwrite(
            relation, 'select * from ' ~ relation ~ ' where not coalesce((' ~ condition ~ '), false)'
        ) %}
    {% endif %}
    {{ return('refresh table ' ~ relation) }}
{% endmacro %}
