"""The same models on Spark (issue #13): dbt-spark in session mode (pyspark, local mode) over raw as a parquet
lake. The multi-day scenario of test_engines (duplicates, updates, restatements, events later than
lookback_days, bad rows) runs `el run` on a spark target each day: el lands raw in the lake with dlt's
filesystem destination (`<lake>/<dataset>/<table>/`, one parquet file per load, append-only) and Spark builds
incrementally. Its marts must equal DuckDB's (loaded from the same sources) row for row after type
normalisation and by column names, and an incremental build must equal a `--full-refresh` build. The lake
sources are re-created only when their file listing changed. Spark's catalog, derby.log and tables live in a
tmp folder (SHOP_SPARK_DIR): none may appear in the work tree. Needs the `spark` extra and Java 17; skipped
with the reason when either is missing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import ELEMENTARY_OFF_IN_CORE_MODE, ELEMENTARY_OFF_ON_SPARK, detect
from el.pipeline import report_path
from shopsim import SimConfig, Simulator
from tests.python.el_helpers import BATCH_MARTS, load_sources, settings_for
from tests.python.test_engines import (
    DAYS,
    HARSH,
    LOOKBACK_DAYS,
    Marts,
    assert_same_marts,
    duckdb_marts,
    el_run,
    el_run_command,
    mart_rows,
)

MISSING = [name for name in ("pyspark", "dbt.adapters.spark") if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(
        f"the spark extra is not installed ({', '.join(MISSING)} missing): scripts/bootstrap.sh spark",
        allow_module_level=True,
    )
if shutil.which("java") is None:
    pytest.skip("no java on PATH: Spark needs Java 17", allow_module_level=True)

pytestmark = [pytest.mark.slow]

LAKE_DATASETS = ("raw_shop", "raw_events", "raw_marketing")
SPARK_LEFTOVERS = ("metastore_db", "spark-warehouse", "derby.log")


def spark_leftovers(folder: Path) -> set[str]:
    """Which of Spark's catalog, warehouse and Derby log (SPARK_LEFTOVERS) exist in `folder`."""
    return {name for name in SPARK_LEFTOVERS if (folder / name).exists()}


def export_lake(warehouse: Path, lake: Path) -> int:
    """Every dlt load of DuckDB's raw tables not exported yet, as one parquet file per load and table (dlt's
    filesystem destination appends files alike); a table without rows gets one empty file, so its folder
    exists with its columns. The number of files written."""
    written = 0
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in "
            f"{LAKE_DATASETS!r} and table_name not like '_dlt%' order by all"
        ).fetchall()
        for dataset, table in tables:
            folder = lake / dataset / table
            folder.mkdir(parents=True, exist_ok=True)
            loads = [
                load for (load,) in conn.execute(f"select distinct _dlt_load_id from {dataset}.{table}").fetchall()
            ]
            for load in loads:
                target = folder / f"{load}.parquet"
                if not target.exists():
                    conn.execute(
                        f"copy (select * from {dataset}.{table} where _dlt_load_id = ?) to '{target}' (format parquet)",
                        [load],
                    )
                    written += 1
            if not any(folder.glob("*.parquet")):
                conn.execute(
                    f"copy (select * from {dataset}.{table} limit 0) to '{folder / 'empty.parquet'}' (format parquet)"
                )
                written += 1
    return written


def spark_marts(spark_dir: Path) -> Marts:
    """The marts as Spark wrote them: the parquet files of each table in Spark's warehouse folder (read by
    DuckDB, so no second JVM holds the Derby catalog the next dbt process opens)."""
    tables = spark_dir / "spark-warehouse" / "main_marts.db"
    with duckdb.connect() as conn:

        def files(mart: str) -> str:
            assert any((tables / mart).glob("*.parquet")), f"{mart}: no parquet files in {tables / mart}"
            return f"read_parquet('{tables / mart}/*.parquet')"

        return mart_rows(
            lambda mart: [c for (c, *_) in conn.execute(f"describe select * from {files(mart)}").fetchall()],
            lambda sql: conn.execute(sql).fetchall(),
            files,
        )


def test_el_run_on_spark_builds_the_same_marts_as_duckdb_and_incremental_equals_full_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`el run` on a spark target over the harsh scenario of test_engines (DAYS days, events later than
    LOOKBACK_DAYS): el lands raw in the lake (dlt's filesystem destination), dbt builds incrementally on
    Spark and checks freshness. The first day is `DBT_TARGET=spark el run` as a user types it; the next days
    run the same pipeline in-process with the scenario's lookback_days (the command has no vars option),
    as test_engines does for PostgreSQL. Spark's marts equal DuckDB's (loaded from the same sources, built
    once from the whole raw history) row for row and by column names, and a `--full-refresh` build on Spark
    gives the same marts."""
    project_root = settings_for(tmp_path).project_root
    leftovers_before = spark_leftovers(project_root)
    on_duckdb = settings_for(tmp_path)
    lake, spark_dir = tmp_path / "lake", tmp_path / "spark"
    # Spark's dbt has its own target/ and logs/ (its manifest differs from DuckDB's); the same sources
    on_spark = replace(settings_for(tmp_path / "on_spark"), sources_root=on_duckdb.sources_root)
    on_spark = replace(on_spark, target="spark", lake=lake)
    monkeypatch.setenv("SHOP_SPARK_DIR", str(spark_dir))  # read by profiles.yml in every dbt process
    sim = Simulator(on_duckdb.sources_root, SimConfig(seed=13, scale=15, max_late_days=4, drift_day=1, rates=HARSH))

    seconds_per_day = []
    for day in range(DAYS):
        sim.advance(1)
        clock = time.perf_counter()
        # day 0 the command line (the spark target and the lake chosen by the environment only), then
        # incremental builds with the scenario's lookback_days
        failures = (el_run_command if day == 0 else el_run)(on_spark, f"spark-{day}")
        seconds_per_day.append(time.perf_counter() - clock)
        assert not failures, failures
        load_sources(on_duckdb)
    print("el run on Spark per day (s):", [round(s) for s in seconds_per_day])

    with duckdb.connect(str(lake / "_control.duckdb"), read_only=True) as control:
        runs = control.execute(
            "select run_id, status from el_meta.pipeline_runs where step = 'run' order by 1"
        ).fetchall()
        steps = dict(
            control.execute(
                f"select step, status from el_meta.pipeline_runs where run_id = 'spark-{DAYS - 1}'"
            ).fetchall()
        )
        report_skipped = control.execute(
            f"select detail from el_meta.pipeline_runs where run_id = 'spark-{DAYS - 1}' and step = 'elementary report'"
        ).fetchall()
    assert runs == [(f"spark-{day}", "ok") for day in range(DAYS)]
    assert steps["dbt build"] == "ok" and steps["source freshness"] == "ok", steps
    # Elementary is off on Spark in either mode (dbt_project.yml); full mode still runs dbt-expectations (below)
    full_mode = detect(on_spark.project_root).full
    assert steps["elementary report"] == "skipped", steps
    assert report_skipped == [(ELEMENTARY_OFF_ON_SPARK if full_mode else ELEMENTARY_OFF_IN_CORE_MODE,)]
    assert not report_path(on_spark).exists()
    # the lake as dlt's filesystem destination lays it out: <lake>/<dataset>/<table>/<load file>.parquet
    landed = {p.relative_to(lake).parts[:2] for p in lake.rglob("*.parquet")}
    assert {len(p.relative_to(lake).parts) for p in lake.rglob("*.parquet")} == {3}
    assert {("raw_shop", "orders"), ("raw_events", "events"), ("raw_marketing", "spend")} <= landed
    assert len(list((lake / "raw_shop" / "orders").glob("*.parquet"))) >= DAYS, "one file per load at least"

    # Spark's catalog and tables are in SHOP_SPARK_DIR, nothing in the work tree
    assert (spark_dir / "metastore_db").is_dir() and (spark_dir / "spark-warehouse").is_dir()
    assert (spark_dir / "derby.log").is_file()
    assert spark_leftovers(project_root) == leftovers_before == set()

    # DuckDB, the reference, builds once from the whole raw history
    dbt_vars = {"lookback_days": LOOKBACK_DAYS}
    reference = DbtRunner(on_duckdb, detect(on_duckdb.project_root)).run(["build", "--quiet"], dbt_vars, capture=True)
    assert reference.returncode == 0, reference.stdout[-3000:]
    duck, incremental = duckdb_marts(on_duckdb), spark_marts(spark_dir)
    assert_same_marts(duck, incremental, "Spark")
    print("rows per mart:", {mart: len(rows) for mart, (_, rows) in duck.items()})

    # the same lake, rebuilt from scratch on Spark (no load: a load would add deliveries)
    clock = time.perf_counter()
    full = DbtRunner(on_spark, detect(on_spark.project_root)).run(["build", "--full-refresh"], dbt_vars, capture=True)
    assert full.returncode == 0, full.stdout[-4000:]
    print(f"Spark --full-refresh build: {time.perf_counter() - clock:.0f}s")
    rebuilt = spark_marts(spark_dir)
    results = json.loads((on_spark.target_dir / "run_results.json").read_text())["results"]
    expectations = [r["status"] for r in results if r["unique_id"].startswith("test.shop.dbt_expectations_")]
    assert bool(expectations) == full_mode and set(expectations) <= {"pass", "warn"}, expectations
    assert not [r for r in results if ".elementary" in r["unique_id"] or "test.shop.elementary_" in r["unique_id"]]
    for mart in BATCH_MARTS:
        assert incremental[mart] == rebuilt[mart], f"{mart}: incremental differs from --full-refresh on Spark"
    assert spark_leftovers(project_root) == set()


def test_a_source_folder_not_landed_is_an_empty_rejects_table_or_a_clear_error(tmp_path: Path) -> None:
    """A lake without raw_marketing/rejects (no bad spend row so far) still builds: the source is an empty
    table; a lake without raw_shop/orders stops the run at the start with one line naming the folder. Then
    the next command over the unchanged lake re-creates no source table, and after a new load file with a
    new column exactly that source is re-created, its new rows and column visible."""
    on_duckdb = settings_for(tmp_path)
    Simulator(on_duckdb.sources_root, SimConfig(seed=3, scale=5)).advance(1)
    load_sources(on_duckdb)
    lake, spark_dir = tmp_path / "lake", tmp_path / "spark"
    export_lake(on_duckdb.warehouse, lake)
    shutil.rmtree(lake / "raw_marketing" / "rejects")
    shutil.move(lake / "raw_shop" / "orders", tmp_path / "orders")
    spark_env = {"DBT_TARGET": "spark", "SHOP_LAKE": str(lake), "SHOP_SPARK_DIR": str(spark_dir)}
    on_spark = settings_for(tmp_path / "on_spark")
    spark_dbt = DbtRunner(on_spark, detect(on_spark.project_root))

    refused = spark_dbt.run(["run", "--select", "stg_marketing__rejects"], capture=True, extra_env=spark_env)
    assert refused.returncode != 0
    assert f"source raw_shop.orders: no parquet files in {lake}/raw_shop/orders (not landed yet" in refused.stdout

    shutil.move(tmp_path / "orders", lake / "raw_shop" / "orders")
    built = spark_dbt.run(["run", "--select", "stg_marketing__rejects"], capture=True, extra_env=spark_env)
    assert built.returncode == 0, built.stdout[-3000:]
    shown = spark_dbt.run(
        ["show", "--inline", "select count(*) as landed_rejects from {{ source('marketing', 'rejects') }}"],
        capture=True,
        extra_env=spark_env,
    )
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert shown.stdout.strip().splitlines()[-1].strip("| ") == "0", shown.stdout[-1000:]
    assert "raw_shop.orders" in recreated(built.stdout)

    # an unchanged lake: the next command keeps every source table (no schema inference)
    again = spark_dbt.run(["run", "--select", "stg_marketing__rejects"], capture=True, extra_env=spark_env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recreated(again.stdout) == []

    # a new load file with a new column: that source alone is re-created, its rows and the column visible
    customers = lake / "raw_shop" / "customers"
    with duckdb.connect() as conn:
        files = f"read_parquet('{customers}/*.parquet')"
        (landed,) = conn.execute(f"select count(*) from {files}").fetchone() or (0,)
        conn.execute(
            f"copy (select *, 'gold' as loyalty_tier from {files}) to '{customers / 'later.parquet'}' (format parquet)"
        )
    assert landed > 0
    changed = spark_dbt.run(["run", "--select", "stg_marketing__rejects"], capture=True, extra_env=spark_env)
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert recreated(changed.stdout) == ["raw_shop.customers"]
    shown = spark_dbt.run(
        [
            "show",
            "--inline",
            "select count(*) as all_rows, count(loyalty_tier) as tiered from {{ source('shop', 'customers') }}",
        ],
        capture=True,
        extra_env=spark_env,
    )
    assert shown.returncode == 0, shown.stdout[-3000:]
    counts = [cell.strip() for cell in shown.stdout.strip().splitlines()[-1].strip("| ").split("|")]
    assert counts == [str(2 * landed), str(landed)], shown.stdout[-1000:]


def recreated(stdout: str) -> list[str]:
    """The lake sources register_lake_sources re-created, from the line it logs."""
    found = re.search(r"lake sources: (\d+) of (\d+) re-created \(file listing changed\)(?:: (.*))?$", stdout, re.M)
    assert found, stdout[-3000:]
    names = found.group(3).split(", ") if found.group(3) else []
    assert len(names) == int(found.group(1)) and int(found.group(2)) >= len(names)
    return names
