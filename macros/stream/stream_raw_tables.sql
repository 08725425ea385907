{% macro create_stream_raw_tables() %}
    {#- on-run-start: the raw tables `el stream` writes exist (empty) before its first batch, so the stream
        staging models, fct_rejects and source freshness work in a project that has not streamed yet.
        The columns are the ones dlt creates; dlt adds payload columns it finds later. The DDL differs per
        engine (`stream_raw_table_ddl`, its engine part dispatched). -#}
    {% set schema = 'raw_stream' %}
    {% if execute %}
        {% do run_query('create schema if not exists ' ~ schema) %}
        {% do run_query(stream_raw_table_ddl(schema ~ '.order_status', [
            ('kafka_topic', 'varchar', true), ('kafka_partition', 'bigint', true),
            ('kafka_offset', 'bigint', true), ('kafka_key', 'varchar', false),
            ('kafka_timestamp', 'timestamptz', false), ('_extracted_at', 'timestamptz', true),
            ('_source', 'varchar', true), ('changed_at', 'timestamptz', false), ('event_id', 'varchar', false),
            ('order_id', 'bigint', false), ('status', 'varchar', false), ('_dlt_load_id', 'varchar', true),
            ('_dlt_id', 'varchar', true),
        ])) %}
        {% do run_query(stream_raw_table_ddl(schema ~ '.rejects', [
            ('source', 'varchar', true), ('source_table', 'varchar', true), ('reason_code', 'varchar', true),
            ('reason', 'varchar', true), ('record', 'varchar', true), ('_extracted_at', 'timestamptz', true),
            ('_source', 'varchar', true), ('_dlt_load_id', 'varchar', true), ('_dlt_id', 'varchar', true),
        ])) %}
    {% endif %}
{% endmacro %}

{% macro stream_raw_table_ddl(relation, columns) -%}
    {#- `create table if not exists` of `relation` with `columns` (name, type of varchar/bigint/timestamptz,
        not null). What differs per engine comes from `raw_table_dialect` (dispatched): default (DuckDB,
        PostgreSQL) varchar, timestamp with time zone and not null; spark a parquet table of string/timestamp
        columns (Spark's timestamp is an instant shown in the session time zone) without not-null
        constraints, which parquet tables do not enforce. -#}
    {%- set dialect = raw_table_dialect() -%}
    create table if not exists {{ relation }} (
    {%- for name, type, required in columns -%}
        {{ name }} {{ dialect.types[type] }}{{ ' not null' if required and dialect.not_null -}}
        {{ ', ' if not loop.last }}
    {%- endfor -%}
    ){{ dialect.suffix }}
{%- endmacro %}

{% macro raw_table_dialect() %}
    {#- The engine's part of `stream_raw_table_ddl`: `types` (varchar/bigint/timestamptz to the engine's
        names), whether `not_null` constraints are written, and the `suffix` after the column list.
        Dispatched: default (DuckDB, PostgreSQL), spark. -#}
    {{ return(adapter.dispatch('raw_table_dialect')()) }}
{% endmacro %}

{% macro default__raw_table_dialect() %}
    {{ return({
        'types': {'varchar': 'varchar', 'bigint': 'bigint', 'timestamptz': 'timestamp with time zone'},
        'not_null': true,
        'suffix': '',
    }) }}
{% endmacro %}

{% macro spark__raw_table_dialect() %}
    {{ return({
        'types': {'varchar': 'string', 'bigint': 'bigint', 'timestamptz': 'timestamp'},
        'not_null': false,
        'suffix': ' using parquet',
    }) }}
{% endmacro %}
