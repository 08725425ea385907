{% macro register_lake_sources() %}
    {#- on-run-start: the raw sources as tables of the engine. DuckDB and PostgreSQL hold raw as tables dlt
        loaded (nothing to do); on Spark raw is the parquet lake dlt's filesystem destination writes
        (`SHOP_LAKE`, default data/lake: one folder `<lake>/<dataset>/<table>/` per raw table), so every
        source table is registered as an external parquet table of its schema. Dispatched: default no-op,
        spark `spark__register_lake_sources`. -#}
    {{ return(adapter.dispatch('register_lake_sources')()) }}
{% endmacro %}

{% macro default__register_lake_sources() %}{% endmacro %}

{% macro spark__register_lake_sources() %}
    {#- Re-created on every run (dropping an external table keeps its files): the schema is inferred again
        from all files, merged (`mergeSchema`: a column dlt adds later appears, older files give null), and
        the file listing is fresh. The landed folders are listed first (Spark's binaryFile source, paths
        only): a rejects table not landed yet (a source without bad rows so far) is an empty table with the
        columns el/ writes; any other source not landed yet stops the run with an error naming its folder.
        Sources outside the lake's datasets (the stream's, created by create_stream_raw_tables) are left
        alone. -#}
    {% if execute %}
        {% set lake = env_var('SHOP_LAKE', 'data/lake') | replace('\\', '/') %}
        {% set datasets = ['raw_shop', 'raw_events', 'raw_marketing'] %}
        {% do run_query(
            "create or replace temporary view lake_files using binaryFile options (path '" ~ lake
            ~ "', recursiveFileLookup 'true', pathGlobFilter '*.parquet')"
        ) %}
        {% set landed = run_query(
            "select distinct regexp_extract(path, '([^/]+/[^/]+)/[^/]+[.]parquet$', 1) from lake_files"
        ).columns[0].values() | list %}
        {% for source in graph.sources.values() | sort(attribute='unique_id') if source.schema in datasets %}
            {% set relation = source.schema ~ '.' ~ source.identifier %}
            {% set folder = source.schema ~ '/' ~ source.identifier %}
            {% do run_query('create schema if not exists ' ~ source.schema) %}
            {% do run_query('drop table if exists ' ~ relation) %}
            {% if folder in landed %}
                {% do run_query(
                    'create table ' ~ relation ~ ' using parquet options (mergeSchema "true") location "'
                    ~ lake ~ '/' ~ folder ~ '"'
                ) %}
            {% elif source.identifier == 'rejects' %}
                {% do run_query(stream_raw_table_ddl(relation, [
                    ('source', 'varchar', true), ('source_table', 'varchar', true),
                    ('reason_code', 'varchar', true), ('reason', 'varchar', true), ('record', 'varchar', true),
                    ('_extracted_at', 'timestamptz', true), ('_source', 'varchar', true),
                    ('_dlt_load_id', 'varchar', true), ('_dlt_id', 'varchar', true),
                ])) %}
            {% else %}
                {% do exceptions.raise_compiler_error(
                    'source ' ~ relation ~ ': no parquet files in ' ~ lake ~ '/' ~ folder
                    ~ ' (not landed yet: run `el load` with DBT_TARGET=spark and SHOP_LAKE=' ~ lake ~ ')'
                ) %}
            {% endif %}
        {% endfor %}
    {% endif %}
{% endmacro %}
