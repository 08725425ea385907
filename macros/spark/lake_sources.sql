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
    {#- Each source is (re-)created only when its folder's file listing changed since the table was created:
        the listing (Spark's binaryFile source: path, size and modification time of every parquet file, file
        contents not read) is hashed per folder and stored in the table's `shop_lake_listing` property;
        a table whose property equals the folder's hash is kept (re-inferring a schema from every file costs
        seconds per source and dbt command). A changed listing (a new load's file, a file with a new column)
        drops the table (dropping an external table keeps its files) and creates it again: the schema is
        inferred from all files, merged (`mergeSchema`: a column dlt adds later appears, older files give
        null). Each dbt process is a new Spark session, so the files a kept table reads are listed afresh.
        A rejects table not landed yet (a source without bad rows so far) is an empty table with the
        columns el/ writes; any other source not landed yet stops the run with an error naming its folder.
        Sources outside the lake's datasets (the stream's, created by create_stream_raw_tables) are left
        alone. The catalog is asked once per schema which tables exist (`show tables in <schema>`), then
        only the existing source tables for their property. Logs how many tables were re-created. -#}
    {% if execute %}
        {% set lake = env_var('SHOP_LAKE', 'data/lake') | replace('\\', '/') %}
        {% set datasets = ['raw_shop', 'raw_events', 'raw_marketing'] %}
        {% do run_query(
            "create or replace temporary view lake_files using binaryFile options (path '" ~ lake
            ~ "', recursiveFileLookup 'true', pathGlobFilter '*.parquet')"
        ) %}
        {% set listings = run_query(
            "select folder, sha2(concat_ws(',', sort_array(collect_list(concat_ws('|', path, "
            ~ "cast(length as string), cast(modificationTime as string))))), 256) from ("
            ~ "select regexp_extract(path, '([^/]+/[^/]+)/[^/]+[.]parquet$', 1) as folder, path, length, "
            ~ "modificationTime from lake_files) as landed_files group by folder"
        ) %}
        {% set listing_of = {} %}
        {% for row in listings.rows %}{% do listing_of.update({row[0]: row[1]}) %}{% endfor %}
        {% set recreated = [] %}
        {% set lake_sources = graph.sources.values() | sort(attribute='unique_id')
            | selectattr('schema', 'in', datasets) | list %}
        {% set existing = [] %}
        {% for schema in lake_sources | map(attribute='schema') | unique %}
            {% do run_query('create schema if not exists ' ~ schema) %}
            {#- columns namespace, tableName, isTemporary; a temporary view (lake_files) has no namespace -#}
            {% for row in run_query('show tables in ' ~ schema).rows if (row[0] | lower) == (schema | lower) %}
                {% do existing.append((schema ~ '.' ~ row[1]) | lower) %}
            {% endfor %}
        {% endfor %}
        {% for source in lake_sources %}
            {% set relation = source.schema ~ '.' ~ source.identifier %}
            {% set folder = source.schema ~ '/' ~ source.identifier %}
            {% set listing = listing_of.get(folder, 'not landed') %}
            {% if lake_source_listing(source.schema, source.identifier, existing) != listing %}
                {% do recreated.append(relation) %}
                {% do run_query('drop table if exists ' ~ relation) %}
                {% if folder in listing_of %}
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
                {% do run_query(
                    "alter table " ~ relation ~ " set tblproperties ('shop_lake_listing' = '" ~ listing ~ "')"
                ) %}
            {% endif %}
        {% endfor %}
        {{ log(
            'lake sources: ' ~ recreated | length ~ ' of ' ~ lake_sources | length
            ~ ' re-created (file listing changed)' ~ (': ' ~ recreated | join(', ') if recreated else ''),
            info=True
        ) }}
    {% endif %}
{% endmacro %}

{% macro lake_source_listing(schema, identifier, existing) %}
    {#- The `shop_lake_listing` property of the lake source table `schema.identifier` (the hash of its folder's
        file listing when it was created), none when the table does not exist (is not in `existing`, the
        lower-case `schema.table` names the catalog listed) or lacks the property. -#}
    {% if ((schema ~ '.' ~ identifier) | lower) not in existing %}
        {{ return(none) }}
    {% endif %}
    {% set properties = run_query('show tblproperties ' ~ schema ~ '.' ~ identifier) %}
    {% for row in properties.rows if row[0] == 'shop_lake_listing' %}
        {{ return(row[1]) }}
    {% endfor %}
    {{ return(none) }}
{% endmacro %}
