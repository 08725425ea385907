{% macro create_stream_raw_tables() %}
    {#- on-run-start: the raw tables `el stream` writes exist (empty) before its first batch, so the stream
        staging models, fct_rejects and source freshness work in a project that has not streamed yet.
        The columns are the ones dlt creates; dlt adds payload columns it finds later. The DDL differs per
        engine (`stream_raw_table_ddl`, dispatched). -#}
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

{% macro stream_raw_table_ddl(relation, columns) %}
    {#- `create table if not exists` of `relation` with `columns` (name, type of varchar/bigint/timestamptz,
        not null). Dispatched: default (DuckDB, PostgreSQL) varchar, timestamp with time zone and not null;
        spark a parquet table of string/timestamp columns (Spark's timestamp is an instant shown in the
        session time zone) without not-null constraints, which parquet tables do not enforce. -#}
    {{ return(adapter.dispatch('stream_raw_table_ddl')(relation, columns)) }}
{% endmacro %}

{% macro default__stream_raw_table_ddl(relation, columns) -%}
    {%- set types = {'varchar': 'varchar', 'bigint': 'bigint', 'timestamptz': 'timestamp with time zone'} -%}
    create table if not exists {{ relation }} (
    {%- for name, type, required in columns -%}
        {{ name }} {{ types[type] }}{{ ' not null' if required }}{{ ', ' if not loop.last }}
    {%- endfor -%}
    )
{%- endmacro %}

{% macro spark__stream_raw_table_ddl(relation, columns) -%}
    {%- set types = {'varchar': 'string', 'bigint': 'bigint', 'timestamptz': 'timestamp'} -%}
    create table if not exists {{ relation }} (
    {%- for name, type, required in columns -%}
        {{ name }} {{ types[type] }}{{ ', ' if not loop.last }}
    {%- endfor -%}
    ) using parquet
{%- endmacro %}
