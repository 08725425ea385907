"""The same models on DuckDB and on PostgreSQL (issue #13): the multi-day scenario (duplicates, updates,
restatements, events later than lookback_days, bad rows) runs `el run` each day into a DuckDB file and into a
scratch PostgreSQL database (DuckDB, the reference, loads every day and builds on the last); the marts must be
equal row for row after type normalisation, and on PostgreSQL the incremental marts must equal a
`--full-refresh` rebuild from raw. PostgreSQL is the real server on
loopback (SHOP_TEST_PG); the test is skipped with the reason when none is reachable.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg
import pytest

from el.dbt import DbtRunner
from el.lock import exclusive
from el.mode import detect
from el.pipeline import PipelineRun, RunOptions
from el.settings import Settings
from el.warehouse import PgConnection
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import BATCH_MARTS, demo_events_url, env_for, load_sources, run_el, settings_for
from tests.python.pg import scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HARSH = Rates(duplicate=0.2, late=0.3, update=0.4, late_update=0.3, restatement=0.6, bad_row=0.06, soft_delete=0.05)
DAYS = 3
LOOKBACK_DAYS = 1  # shorter than the simulator's lateness (max_late_days): late events miss the safety net
# load-time lineage differs between two loads of the same data: the watermarks and extraction times
LOAD_TIME_COLUMNS = ("_watermark", "first_extracted_at", "last_extracted_at")
# a reject's raw record is JSON text rendered by each engine (key spacing, number formatting), and its
# id hashes that text: rejects are compared by source, table, reason and delivery count
ENGINE_RENDERED = {"fct_rejects": ("reject_id", "raw_record")}


@dataclass(frozen=True)
class ScenarioRunOptions(RunOptions):
    lookback_days: int = LOOKBACK_DAYS

    def dbt_vars(self) -> dict[str, Any]:
        return {**super().dbt_vars(), "lookback_days": self.lookback_days}


def postgres_settings(base: Settings, url: str) -> Settings:
    parts = urlsplit(url)
    connection = PgConnection(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        dbname=parts.path.lstrip("/"),
    )
    return replace(
        base,
        warehouse=base.warehouse.with_name("postgres.lock-folder") / "warehouse",
        target_dir=base.target_dir.with_name("target_pg"),
        log_dir=base.log_dir.with_name("logs_pg"),
        target="postgres",
        postgres=connection,
    )


def el_run(settings: Settings, run_id: str, full_refresh: bool = False) -> list[str]:
    """`el run` in-process; the failed steps."""
    with demo_events_url(settings) as url:
        options = ScenarioRunOptions(quiet=True, full_refresh=full_refresh, events_url=url)
        results = PipelineRun(settings, detect(settings.project_root), run_id, options).execute()
    return [f"{run_id}: {r.step} {r.detail}" for r in results if r.status == "failed"]


def el_run_command(settings: Settings, run_id: str) -> list[str]:
    """`el run` as a user types it, the warehouse chosen by the environment only (DBT_TARGET=postgres and
    SHOP_PG_*, or DBT_TARGET=spark and SHOP_LAKE); the failure when it did not exit 0."""
    with demo_events_url(settings) as url:
        assert env_for(settings)["DBT_TARGET"] == settings.target in ("postgres", "spark")
        done = run_el(
            settings, "run", "--run-id", run_id, timeout=1800,
            PYTHONPATH=str(settings.project_root), SHOP_EVENTS_URL=url or "",
        )  # fmt: skip
    return [] if done.returncode == 0 else [f"{run_id}: el run exited {done.returncode}: {done.stdout[-2000:]}"]


def normalise(value: Any) -> Any:
    """One representation per value whatever the engine returned: numbers as rounded floats,
    timestamps as naive UTC."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal | float | int):
        return round(float(value), 6)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


Marts = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def mart_rows(
    columns_of: Callable[[str], list[str]],
    fetch: Callable[[str], list[tuple[Any, ...]]],
    relation: Callable[[str], str] = lambda mart: f"main_marts.{mart}",
) -> Marts:
    """Per mart of BATCH_MARTS: its compared column names (load-time lineage and engine-rendered columns
    left out) and its rows, normalised and sorted. `columns_of(mart)` lists the stored columns in order,
    `relation(mart)` is what the rows are selected from, `fetch(sql)` runs the query."""
    content = {}
    for mart in BATCH_MARTS:
        skipped = LOAD_TIME_COLUMNS + ENGINE_RENDERED.get(mart, ())
        columns = [c for c in columns_of(mart) if c not in skipped]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = fetch(f"select {listed} from {relation(mart)}")
        content[mart] = (columns, sorted((tuple(normalise(v) for v in row) for row in rows), key=repr))
    return content


def assert_same_marts(expected: Marts, actual: Marts, engine: str) -> None:
    """`actual`, the marts `engine` built, equal `expected`, DuckDB's (the reference): per mart of BATCH_MARTS,
    DuckDB's is not empty (else the comparison proves nothing), then the same column names, then the same
    rows. Each message names the mart and the engine."""
    for mart in BATCH_MARTS:
        assert expected[mart][1], f"{mart} is empty: the comparison would prove nothing"
        assert actual[mart][0] == expected[mart][0], f"{mart}: columns differ between DuckDB and {engine}"
        assert actual[mart][1] == expected[mart][1], f"{mart} differs between DuckDB and {engine}"


def duckdb_marts(settings: Settings) -> Marts:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        return mart_rows(
            lambda mart: [
                c
                for (c,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = 'main_marts' "
                    "and table_name = ? order by ordinal_position",
                    [mart],
                ).fetchall()
            ],
            lambda sql: conn.execute(sql).fetchall(),
        )


def postgres_marts(url: str) -> Marts:
    with psycopg.connect(url) as conn:
        return mart_rows(
            lambda mart: [
                c
                for (c,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = 'main_marts' "
                    "and table_name = %s order by ordinal_position",
                    [mart],
                ).fetchall()
            ],
            lambda sql: conn.execute(sql).fetchall(),
        )


def pg(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_duckdb_and_postgres_build_the_same_marts_and_incremental_equals_full_refresh(tmp_path: Path) -> None:
    on_duckdb = settings_for(tmp_path)
    sim = Simulator(on_duckdb.sources_root, SimConfig(seed=13, scale=15, max_late_days=4, drift_day=1, rates=HARSH))
    timings: dict[str, float] = {"duckdb": 0.0, "postgres": 0.0}
    with scratch_database() as url:
        on_postgres = postgres_settings(on_duckdb, url)
        failures: list[str] = []
        for day in range(DAYS):
            sim.advance(1)
            clock = time.perf_counter()
            if day == 0:  # the first day through the command line: `DBT_TARGET=postgres el run`
                failures += el_run_command(on_postgres, f"postgres-{day}")
            else:  # incremental builds, with the scenario's lookback_days
                failures += el_run(on_postgres, f"postgres-{day}")
            timings["postgres"] += time.perf_counter() - clock
            clock = time.perf_counter()
            # DuckDB, the reference, loads every day and builds once from the whole raw history (its own
            # incremental == full refresh is test_property_incremental's job)
            if day < DAYS - 1:
                load_sources(on_duckdb)
            else:
                failures += el_run(on_duckdb, f"duckdb-{day}")
            timings["duckdb"] += time.perf_counter() - clock
        assert not failures, failures
        print(f"{DAYS} daily loads: DuckDB {timings['duckdb']:.0f}s, PostgreSQL (el run) {timings['postgres']:.0f}s")

        # raw landed in PostgreSQL by dlt: rows, rejects, lineage columns and dlt's state next to the data
        raw_orders, loads = pg(url, "select count(*), count(distinct _dlt_load_id) from raw_shop.orders")[0]
        assert raw_orders > 0 and loads >= 3
        assert pg(url, "select count(*) from raw_shop.orders where _extracted_at is null or _source is null")[0][0] == 0
        el_rejects = pg(url, "select count(*) from raw_events.rejects")[0][0]
        assert el_rejects > 0, "the harsh rates deliver bad events: el/ quarantines them"
        states = pg(url, "select count(*) from raw_shop._dlt_pipeline_state where pipeline_name = 'shop_db'")[0][0]
        assert states >= 1
        runs = pg(url, "select run_id, status from el_meta.pipeline_runs where step = 'run' order by run_id")
        assert runs == [(f"postgres-{day}", "ok") for day in range(DAYS)]
        steps = dict(pg(url, f"select step, status from el_meta.pipeline_runs where run_id = 'postgres-{DAYS - 1}'"))
        assert steps["dbt build"] == "ok" and steps["source freshness"] == "ok"

        duck, incremental = duckdb_marts(on_duckdb), postgres_marts(url)
        assert_same_marts(duck, incremental, "PostgreSQL")
        print("rows per mart:", {mart: len(rows) for mart, (_, rows) in duck.items()})

        # the same raw, rebuilt from scratch (no load: a load would add deliveries)
        clock = time.perf_counter()
        full = DbtRunner(on_postgres, detect(on_postgres.project_root)).run(
            ["build", "--full-refresh", "--quiet"], {"lookback_days": LOOKBACK_DAYS}, capture=True
        )
        assert full.returncode == 0, full.stdout[-3000:]
        print(f"PostgreSQL --full-refresh build: {time.perf_counter() - clock:.0f}s")
        rebuilt = postgres_marts(url)
        for mart in BATCH_MARTS:
            assert incremental[mart] == rebuilt[mart], f"{mart}: incremental differs from --full-refresh on PostgreSQL"


def test_the_postgres_warehouse_lock_refuses_a_second_el_process(tmp_path: Path) -> None:
    """`el` with DBT_TARGET=postgres locks the database (an advisory lock), not a local file: a second `el`
    is refused with the holder's name, even from another folder (another host would be refused alike)."""
    with scratch_database() as url:
        settings = postgres_settings(settings_for(tmp_path), url)
        other_folder = replace(settings, warehouse=tmp_path / "elsewhere" / "warehouse.duckdb")
        env = env_for(other_folder, PYTHONPATH=str(settings.project_root))
        assert env["DBT_TARGET"] == "postgres" and env["SHOP_PG_DBNAME"] == settings.postgres.dbname  # type: ignore[union-attr]
        with exclusive(settings.warehouse_db, "el run r-1"):
            refused = run_el(other_folder, "dbt", "ls", PYTHONPATH=str(settings.project_root))
        assert refused.returncode == 2, refused.stderr
        assert "el dbt: refused: el run r-1" in refused.stderr and settings.postgres.dbname in refused.stderr  # type: ignore[union-attr]
        # released with its connection: the next process gets it
        with exclusive(settings.warehouse_db, "el run r-2"):
            pass


def test_an_unreachable_or_unknown_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    """No server on the port, or a DBT_TARGET that profiles.yml lacks: exit 2 with one line saying so."""
    settings = settings_for(tmp_path)
    env = {"PYTHONPATH": str(settings.project_root), "DBT_TARGET": "postgres", "SHOP_PG_HOST": "127.0.0.1"}
    unreachable = run_el(settings, "run", **env, SHOP_PG_PORT="1")
    assert unreachable.returncode == 2, unreachable.stderr
    assert "el run: postgresql://postgres@127.0.0.1:1/analytics unreachable" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    unknown = run_el(settings, "load", **{**env, "DBT_TARGET": "nope"})
    assert unknown.returncode == 2 and "el: DBT_TARGET=nope is not an output of profiles.yml" in unknown.stderr


def test_the_postgres_connection_comes_from_secrets_toml_when_the_environment_is_silent(tmp_path: Path) -> None:
    """No SHOP_PG_* variable: `el` reads dlt's `[destination.postgres.credentials]` in `.dlt/secrets.toml` and
    hands the same connection to dbt, which seeds into that database; a SHOP_PG_* variable still wins."""
    with scratch_database() as url:
        parts = urlsplit(url)
        dbname = parts.path.lstrip("/")
        project = tmp_path / "dlt_project"
        (project / ".dlt").mkdir(parents=True)
        (project / ".dlt" / "secrets.toml").write_text(
            "[destination.postgres.credentials]\n"
            f'host = "{parts.hostname or "127.0.0.1"}"\nport = {parts.port or 5432}\n'
            f'username = "{parts.username or "postgres"}"\ndatabase = "{dbname}"\n'
            + (f'password = "{parts.password}"\n' if parts.password else "")
        )
        env = {k: v for k, v in env_for(settings_for(tmp_path)).items() if not k.startswith("SHOP_PG_")}
        env.update(
            PYTHONPATH=str(settings_for(tmp_path).project_root), DBT_TARGET="postgres", DLT_PROJECT_DIR=str(project)
        )
        seeded = subprocess.run(
            [sys.executable, "-m", "el.cli", "dbt", "seed", "--select", "countries"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=300,
        )
        assert seeded.returncode == 0, seeded.stdout[-3000:] + seeded.stderr[-2000:]
        with psycopg.connect(url) as conn:
            tables = conn.execute(
                "select table_schema from information_schema.tables where table_name = 'countries'"
            ).fetchall()
            assert len(tables) == 1, tables
            countries = conn.execute(f'select count(*) from "{tables[0][0]}".countries').fetchone()
        expected = len((settings_for(tmp_path).project_root / "seeds" / "countries.csv").read_text().splitlines()) - 1
        assert countries == (expected,)
        # the environment wins over secrets.toml: an unreachable port from SHOP_PG_PORT is refused in one line
        refused = subprocess.run(
            [sys.executable, "-m", "el.cli", "dbt", "seed", "--select", "countries"],
            capture_output=True,
            text=True,
            env={**env, "SHOP_PG_PORT": "1"},
            check=False,
            timeout=120,
        )
        assert refused.returncode == 2, refused.stderr
        assert f":1/{dbname} unreachable" in refused.stderr
