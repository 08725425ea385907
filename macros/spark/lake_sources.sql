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
        the file listing is fresh. A folder not landed yet fails here with Spark's PATH_NOT_FOUND naming the
        folder. Sources outside the lake's datasets (the stream's, created by create_stream_raw_tables) are
        left alone. -#}
    {% if execute %}
        {% set lake = env_var('SHOP_LAKE', 'data/lake') | replace('\\', '/') %}
        {% set datasets = ['raw_shop', 'raw_events', 'raw_marketing'] %}
        {% for source in graph.sources.values() | sort(attribute='unique_id') if source.schema in datasets %}
            {% set relation = source.schema ~ '.' ~ source.identifier %}
            {% do run_query('create schema if not exists ' ~ source.schema) %}
            {% do run_query('drop table if exists ' ~ relation) %}
            {% do run_query(
                'create table ' ~ relation ~ ' using parquet options (mergeSchema "true") location "'
                ~ lake ~ '/' ~ source.schema ~ '/' ~ source.identifier ~ '"'
            ) %}
        {% endfor %}
    {% endif %}
{% endmacro %}
