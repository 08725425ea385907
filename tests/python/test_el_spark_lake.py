"""The spark target's raw: dlt's filesystem destination writes parquet into the lake, one folder per table.

Real loads from the demo simulator's sources; the lake is read with DuckDB (no Spark needed): its files
directly, and through the views of the control file `<lake>/_control.duckdb` that el/ reads raw with.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from el.dbt import DbtRunner
from el.load import Loader, run_load
from el.lock import AlreadyRunningError, exclusive
from el.mode import detect
from el.settings import Settings
from el.warehouse import CONTROL_FILE, WarehouseError, target_engine
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import SERVED, demo_events_url, env_for, load_sources, settings_for, src, wh
from tests.python.test_el_load import FIT

RAW = {
    "raw_shop": ("customers", "products", "orders", "order_items", "payments", "rejects"),
    "raw_events": ("events", "rejects"),
    "raw_marketing": ("spend", "rejects"),
}
LINEAGE = ("_extracted_at", "_source", "_dlt_load_id")
SPARK_PROFILE = "shop:\n  outputs:\n    spark:\n      type: spark\n      method: session\n      schema: main\n"
PER_LOAD = {"_extracted_at", "_dlt_load_id", "_dlt_id"}  # differ between two loads of the same rows


def lake_settings(tmp_path: Path) -> Settings:
    """settings_for(tmp_path) on a spark target: raw in tmp_path/lake."""
    return replace(settings_for(tmp_path), target="spark", lake=tmp_path / "lake")


def lake(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.lake is not None
    with duckdb.connect(str(settings.lake / CONTROL_FILE), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def files(settings: Settings, dataset: str, table: str) -> str:
    assert settings.lake is not None
    return f"read_parquet('{settings.lake / dataset / table}/*.parquet', union_by_name = true)"


def parquet_files(settings: Settings) -> dict[str, float]:
    assert settings.lake is not None
    return {str(p.relative_to(settings.lake)): p.stat().st_mtime for p in settings.lake.glob("raw_*/*/*.parquet")}


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.normalize()  # decimal(38,9) in parquet, the contract's scale on DuckDB: same number
    return value


def rows_without_load_columns(query: Any, table: str) -> list[tuple[Any, ...]]:
    """The table's rows (all columns but the per-load ones, by name) sorted, from a `query(sql)` function."""
    columns = [name for (name, *_rest) in query(f"describe select * from {table}") if name not in PER_LOAD]
    listed = ", ".join(f'"{c}"' for c in sorted(columns))
    rows = [tuple(_value(v) for v in row) for row in query(f"select {listed} from {table}")]
    return sorted(rows, key=repr)


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    for name in ("SHOP_DB_URL", "SHOP_EVENTS_URL", "SHOP_FILES_DIR", "SHOP_LAG_HOURS", "SHOP_EVENTS_LAG_HOURS"):
        monkeypatch.delenv(name, raising=False)
    rates = Rates(duplicate=0.1, late=0.2, bad_row=0.05, late_update=0.3, restatement=1.0)
    return Simulator(tmp_path / "sources", SimConfig(scale=60, rates=rates))


@pytest.mark.slow
def test_lake_holds_exactly_the_raw_the_duckdb_path_lands(tmp_path: Path, sources: Simulator) -> None:
    """Two days (duplicate and late events, back-dated updates, bad rows, a restated spend file) loaded
    day by day into a DuckDB warehouse and into the lake: every raw table and every rejects table has the
    same rows, value for value (but the per-load ids and times), and the lineage columns on every row."""
    duck = replace(settings_for(tmp_path / "duck"), sources_root=sources.paths.root)
    spark = replace(lake_settings(tmp_path / "spark"), sources_root=sources.paths.root)
    for _ in range(2):
        sources.advance(1)
        load_sources(duck)
        load_sources(spark)
    assert spark.lake is not None
    for dataset, tables in RAW.items():
        for table in tables:
            folder = spark.lake / dataset / table
            assert sorted(p.suffix for p in folder.iterdir()) == [".parquet"] * len(list(folder.iterdir())), folder
            in_duck = rows_without_load_columns(lambda sql: wh(duck, sql), f"{dataset}.{table}")
            from_files = rows_without_load_columns(lambda sql: lake(spark, sql), files(spark, dataset, table))
            assert len(from_files) == len(in_duck) > 0 or table == "rejects", (dataset, table)
            assert from_files == in_duck, (dataset, table)
            # the control file's view reads the same files
            assert lake(spark, f"select count(*) from {dataset}.{table}") == [(len(from_files),)]
            nulls = " or ".join(f"{c} is null" for c in LINEAGE)
            assert lake(spark, f"select count(*) from {files(spark, dataset, table)} where {nulls}") == [(0,)]
    # the simulated defects are there: rejects of every dataset, duplicate event deliveries, a restatement
    assert lake(spark, f"select count(*) > 0 from {files(spark, 'raw_shop', 'rejects')}") == [(True,)]
    assert lake(spark, f"select count(*) > 0 from {files(spark, 'raw_events', 'rejects')}") == [(True,)]
    duplicated = "select count(*) - count(distinct event_id) from raw_events.events"
    assert lake(spark, duplicated)[0][0] > 0
    restated = "count(distinct (_file_name, _file_modified_at)) - count(distinct _file_name)"
    versions = f"select {restated} from raw_marketing.spend"
    assert lake(spark, versions)[0][0] > 0, "a restated spend file was loaded again"
    # every raw row belongs to a load dlt recorded in the lake
    for dataset, tables in RAW.items():
        for table in tables:
            loads = f"select load_id from {dataset}._dlt_loads"
            unknown = f"select count(*) from {dataset}.{table} where _dlt_load_id not in ({loads})"
            assert lake(spark, unknown) == [(0,)], (dataset, table)


def test_second_load_appends_only_the_new_slice(tmp_path: Path, sources: Simulator, monkeypatch) -> None:
    """Files are only ever added: a load with nothing new writes no table file, the next day's load writes
    new files holding exactly the rows changed since the cursor, and el_meta.load_metrics (in the control
    file) records each load with the load id its rows carry."""
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    first = load_sources(settings)
    files_first = parquet_files(settings)
    counts = {t: lake(settings, f"select count(*) from raw_shop.{t}")[0][0] for t in RAW["raw_shop"][:-1]}
    cursor = {t: lake(settings, f"select max(updated_at) from raw_shop.{t}")[0][0] for t in RAW["raw_shop"][:-1]}

    again = load_sources(settings)
    assert sum(m.rows_loaded + m.rejects for m in again) == 0, "nothing new: nothing loaded"
    assert parquet_files(settings) == files_first, "no table file written, none rewritten"
    assert settings.lake is not None
    metadata = [pq.ParquetFile(settings.lake / name).metadata for name in files_first]
    compressions = {m.row_group(0).column(0).compression for m in metadata if m.num_row_groups}
    assert compressions == {"SNAPPY"}, "the lake keeps its files: compressed, unlike transient load files"

    sources.advance(1)
    third = load_sources(settings)
    files_third = parquet_files(settings)
    assert {k: v for k, v in files_third.items() if k in files_first} == files_first, "old files untouched"
    new_files = set(files_third) - set(files_first)
    for table, before in counts.items():
        stamp = cursor[table].strftime("%Y-%m-%d %H:%M:%S.%f")
        newer = f"select count(*) from {table} where updated_at > '{stamp}' and {FIT[table]}"
        (changed,) = src(sources.paths.shop_db, newer)[0]
        after = lake(settings, f"select count(*) from raw_shop.{table}")[0][0]
        assert after - before == changed > 0, table
        # the new rows are exactly those of the new files, and all of them are newer than the cursor
        load_ids = {m.load_id for m in third if m.table_name == table}
        in_new = lake(
            settings,
            f"select count(*), min(updated_at) from raw_shop.{table} where _dlt_load_id in "
            f"({', '.join(repr(i) for i in load_ids)})",
        )[0]
        assert in_new[0] == after - before and in_new[1] > cursor[table], table
        assert any(name.startswith(f"raw_shop/{table}/") for name in new_files), table
    # load metrics: one row per table and load, in the control file, with the load id of its rows
    stored = lake(settings, "select table_name, rows_loaded, rejects, load_id, status from el_meta.load_metrics")
    assert sorted(stored, key=repr) == sorted(
        ((m.table_name, m.rows_loaded, m.rejects, m.load_id, m.status) for m in first + again + third), key=repr
    )
    for m in third:
        dataset = {"events": "raw_events", "spend": "raw_marketing"}.get(m.table_name, "raw_shop")
        if m.rows_loaded:
            tagged = lake(settings, f"select count(*) from {dataset}.{m.table_name} where _dlt_load_id = '{m.load_id}'")
            assert tagged == [(m.rows_loaded,)], m.table_name


def test_cursor_state_is_restored_from_the_lake(tmp_path: Path, sources: Simulator, monkeypatch) -> None:
    """dlt's filesystem destination keeps the pipeline state with the files: losing the local dlt
    folder re-reads nothing."""
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    load_sources(settings)
    before = parquet_files(settings)
    assert settings.lake is not None
    shutil.rmtree(settings.pipelines_dir)
    again = load_sources(settings)
    assert sum(m.rows_loaded for m in again) == 0
    assert parquet_files(settings) == before


CRASH_AT_COMMIT = """
import os, sys
from dataclasses import replace
from pathlib import Path
import dlt.destinations.impl.filesystem.filesystem as fs
from el.load import run_load
from el.settings import Settings

def die(self, load_id):  # after every table file of the package is written, before state and _dlt_loads
    os._exit(9)

fs.FilesystemClient.complete_load = die
run_load(replace(Settings.from_env(), target="spark", lake=Path(sys.argv[1])), ["shop_db"])
"""


@pytest.mark.slow
def test_crash_between_file_write_and_state_commit_loses_and_doubles_nothing(
    tmp_path: Path, sources: Simulator, monkeypatch, capsys
) -> None:
    """A process killed after dlt wrote a package's parquet files but before it stored the state and the
    load record: the files stay (visible in the lake), the package stays pending locally, and the rerun
    completes it instead of extracting its rows again, then extracts what changed since - every source
    row lands exactly once, the new day's in that same rerun."""
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    assert settings.lake is not None
    done = subprocess.run(
        [sys.executable, "-c", CRASH_AT_COMMIT, str(settings.lake)],
        env=env_for(settings, SHOP_LAG_HOURS="0", DBT_TARGET="dev"),  # the child sets the lake itself
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 9, done.stderr[-2000:]
    written = list(settings.lake.glob("raw_shop/customers/*.parquet"))
    assert written and not list(settings.lake.glob("raw_shop/_dlt_loads/*")), "crashed after the write"
    (customers_at_crash,) = src(sources.paths.shop_db, "select count(*) from customers")[0]
    sources.advance(1)  # a new day in the source before the rerun: the rerun must take it too
    (customers_now,) = src(sources.paths.shop_db, "select count(*) from customers")[0]
    assert customers_now > customers_at_crash, "the new day adds customers"
    capsys.readouterr()
    run_load(settings, ["shop_db"])
    assert "left by an interrupted run" in capsys.readouterr().out
    for table in RAW["raw_shop"][:-1]:
        key = {"order_items": "order_item_id"}.get(table, table.rstrip("s") + "_id")
        (fit,) = src(sources.paths.shop_db, f"select count(*) from {table} where {FIT[table]}")[0]
        raw = lake(settings, f"select count(*), count(distinct ({key}, updated_at)), count(distinct {key}) "
                             f"from raw_shop.{table}")[0]  # fmt: skip
        assert raw[0] == raw[1], f"{table}: a row version landed twice"
        assert raw[2] == fit, f"{table}: every fit source row, the new day's included"
        loads = "select load_id from raw_shop._dlt_loads"
        assert lake(settings, f"select count(*) from raw_shop.{table} where _dlt_load_id not in ({loads})") == [(0,)]


def test_events_served_land_once_or_as_rejects(tmp_path: Path, sources: Simulator) -> None:
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    with demo_events_url(settings) as url:
        run_load(settings, ["events_api"], events_url=url)
    served = src(sources.paths.events_db, f"select count(*), count(defect) from events where {SERVED}")[0]
    loaded = lake(settings, "select count(*) from raw_events.events")[0][0]
    rejected = lake(settings, "select count(*) from raw_events.rejects")[0][0]
    assert (loaded + rejected, rejected) == served


def test_direct_path_falls_back_to_dlt_on_the_lake(tmp_path: Path, capsys, monkeypatch) -> None:
    from el.config import SourceConfig

    settings = lake_settings(tmp_path)
    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:1/shop")
    monkeypatch.delenv("SHOP_EL_DIRECT", raising=False)
    loader = Loader(settings, "run-1")
    assert loader.load_shop_direct(SourceConfig.from_env(settings)) == set()
    assert "path dlt (the direct path writes a DuckDB warehouse; this one is spark)" in capsys.readouterr().err


def test_spark_target_selects_the_lake(tmp_path: Path, monkeypatch) -> None:
    """A profiles.yml output of type spark makes el/ write the lake (SHOP_LAKE, default data/lake)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "profiles.yml").write_text(
        "shop:\n  outputs:\n    spark:\n      type: spark\n      method: session\n      schema: main\n"
        "    mssql:\n      type: sqlserver\n",
        encoding="utf-8",
    )
    assert target_engine(root, "spark") == "spark"
    with pytest.raises(WarehouseError, match="has type 'sqlserver'"):
        target_engine(root, "mssql")
    for name in ("SHOP_WAREHOUSE", "SHOP_LAKE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOP_PROJECT_ROOT", str(root))
    monkeypatch.setenv("DBT_TARGET", "spark")
    settings = Settings.from_env()
    assert (settings.engine, settings.lake) == ("spark", root / "data" / "lake")
    assert settings.warehouse_db.path == root / "data" / "lake" / CONTROL_FILE
    assert settings.as_env()["SHOP_LAKE"] == str(root / "data" / "lake")
    dbt_env = DbtRunner(replace(settings, warehouse=tmp_path / "wh" / "unused.duckdb"), detect(PROJECT_ROOT)).env()
    assert (dbt_env["DBT_TARGET"], dbt_env["SHOP_LAKE"]) == ("spark", str(root / "data" / "lake"))
    monkeypatch.setenv("SHOP_LAKE", str(tmp_path / "elsewhere"))
    assert Settings.from_env().lake == tmp_path / "elsewhere"


def test_el_stream_refuses_the_lake(tmp_path: Path) -> None:
    from el.cli import build_parser, cmd_stream

    args = build_parser().parse_args(["stream", "--max-batches", "1"])
    assert cmd_stream(args, lake_settings(tmp_path)) == 2
    assert not (tmp_path / "lake").exists()


def test_hard_deleted_row_gets_one_tombstone_in_the_lake(tmp_path: Path, sources: Simulator, monkeypatch) -> None:
    """Key reconciliation reads raw through the control file's views and appends the tombstone as a file."""
    monkeypatch.delenv("SHOP_KEY_RECONCILIATION", raising=False)
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    load_sources(settings, ["shop_db"])
    ((customer,),) = lake(settings, "select min(customer_id) from raw_shop.customers where deleted_at is null")
    conn = sqlite3.connect(sources.paths.shop_db)
    with conn:
        conn.execute("delete from customers where customer_id = ?", (customer,))
    conn.close()
    for _ in range(2):  # the second load finds the tombstone: no second one
        load_sources(settings, ["shop_db"])
    tombstones = f"select deleted_at is not null, _source from {files(settings, 'raw_shop', 'customers')} "
    assert lake(settings, tombstones + f"where customer_id = {customer} and _source like '%#reconcile'") == [
        (True, "shop_db.customers#reconcile")
    ]
    assert lake(settings, "select count(*) from raw_shop.customers where _source like '%#reconcile'") == [(1,)]


def test_concurrent_load_on_the_lake_is_refused(tmp_path: Path, sources: Simulator) -> None:
    settings = replace(lake_settings(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    with (
        exclusive(settings.warehouse_db, "test holder"),
        pytest.raises(AlreadyRunningError, match="refused: test holder"),
    ):
        load_sources(settings, ["marketing_files"])
    assert settings.lake is not None
    assert not list(settings.lake.glob("raw_*/*/*.parquet"))


def test_el_load_command_on_a_spark_target_writes_the_lake(tmp_path: Path, sources: Simulator) -> None:
    """`DBT_TARGET=spark el load` (the command, in a child process) with a profiles.yml whose `spark`
    output has type spark: raw in SHOP_LAKE, nothing in SHOP_WAREHOUSE; `el stream` refuses in one line."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "profiles.yml").write_text(SPARK_PROFILE, encoding="utf-8")
    settings = replace(settings_for(tmp_path), sources_root=sources.paths.root)
    sources.advance(1)
    env = env_for(settings, SHOP_PROJECT_ROOT=str(root), DBT_TARGET="spark", SHOP_LAKE=str(tmp_path / "lake"))
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "load", "marketing_files"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "el: marketing_files.spend:" in done.stdout
    lines = sum(len(p.read_text().splitlines()) - 1 for p in sources.paths.marketing_dir.iterdir())
    spend = duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/lake/raw_marketing/spend/*.parquet')")
    rejected = duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/lake/raw_marketing/rejects/*.parquet')")
    assert spend.fetchall()[0][0] + rejected.fetchall()[0][0] == lines
    assert not settings.warehouse.exists()
    stream = subprocess.run(
        [sys.executable, "-m", "el.cli", "stream", "--max-batches", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stream.returncode == 2 and "not supported on a spark warehouse" in stream.stderr
