{% macro create_stream_raw_tables() %}
    {#- on-run-start: the raw tables `el stream` writes exist (empty) before its first batch, so the stream
        staging models, fct_rejects and source freshness work in a project that has not streamed yet.
        The columns are the ones dlt creates; dlt adds payload columns it finds later. -#}
    {% set schema = 'raw_stream' %}
    {% if execute %}
        {% do run_query('create schema if not exists ' ~ schema) %}
        {% do run_query(
            'create table if not exists ' ~ schema ~ '.order_status ('
            ~ 'kafka_topic varchar not null, kafka_partition bigint not null, kafka_offset bigint not null, '
            ~ 'kafka_key varchar, kafka_timestamp timestamp with time zone, '
            ~ '_extracted_at timestamp with time zone not null, _source varchar not null, '
            ~ 'changed_at timestamp with time zone, event_id varchar, order_id bigint, status varchar, '
            ~ '_dlt_load_id varchar not null, _dlt_id varchar not null)'
        ) %}
        {% do run_query(
            'create table if not exists ' ~ schema ~ '.rejects ('
            ~ 'source varchar not null, source_table varchar not null, reason_code varchar not null, '
            ~ 'reason varchar not null, record varchar not null, '
            ~ '_extracted_at timestamp with time zone not null, _source varchar not null, '
            ~ '_dlt_load_id varchar not null, _dlt_id varchar not null)'
        ) %}
    {% endif %}
{% endmacro %}
