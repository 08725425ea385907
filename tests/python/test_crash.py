"""Crash tests with real processes: kill -9 the load, and separately the dbt build, then rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.load import failed_packages_dir
from el.mode import detect
from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from shopsim.config import Rates
from tests.python.el_helpers import env_for, load_sources, served_fit_events, settings_for, wh

pytestmark = pytest.mark.slow


def _events_pipeline(settings: Settings) -> Path:
    return settings.pipelines_dir / "events_api"


def _extract_files(settings: Settings, table: str) -> list[str]:
    """Names of the extract files of `table` in the events pipeline's packages not yet normalized (dlt
    extracts into normalize/<extract id>/<load id>/ and moves a package to normalize/extracted/ when done)."""
    return [path.name for path in _events_pipeline(settings).glob(f"normalize/*/*/new_jobs/{table}.*")]


def _cut_short(settings: Settings) -> list[str]:
    """Load ids of the events pipeline's packages whose extract never finished (outside normalize/extracted/)."""
    normalize = _events_pipeline(settings) / "normalize"
    return [path.name for path in normalize.glob("*/*") if path.is_dir() and path.parent.name != "extracted"]


def _wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.parametrize("loaded_before", [False, True], ids=["first_load", "daily_load"])
def test_kill_9_during_load_then_rerun_loses_and_doubles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loaded_before: bool
) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40, rates=Rates(duplicate=0.1, bad_row=0.02)))
    sim.advance(1 if loaded_before else 2)
    # dlt flushes extracted rows to their file every 25 rows (default 5000): the killed load leaves its pages on disk
    env = env_for(settings, SHOP_EVENTS_PAGE_SIZE="25", SHOP_EVENTS_LAG_HOURS="0", DATA_WRITER__BUFFER_MAX_ITEMS="25")
    with EventsApi(sim.paths.events_db) as api:
        api.server.delay = 0.02
        env["SHOP_EVENTS_URL"] = api.url
        monkeypatch.setenv("SHOP_EVENTS_URL", api.url)
        monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
        load_sources(settings, ["marketing_files"])  # a completed load before the crash
        if loaded_before:  # the events table is stored: the killed load's fit pages go to dlt as Arrow
            load_sources(settings, ["events_api"])
            sim.advance(2)
        before = api.server.requests
        loader = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "load", "events_api"], env=env, stdout=subprocess.DEVNULL
        )
        # kill early in the extract (~28 pages), once its first pages are on disk
        _wait_for(lambda: api.server.requests > before + 5 and bool(_extract_files(settings, "events")))
        os.kill(loader.pid, signal.SIGKILL)
        loader.wait()
        assert loader.returncode == -signal.SIGKILL
        # the killed load's extract files (its package, never committed): its events pages went to dlt as
        # Arrow (parquet) when the table was stored, by rows when not
        formats = {"parquet" if name.endswith(".parquet") else "rows" for name in _extract_files(settings, "events")}
        assert ("parquet" in formats) if loaded_before else (formats == {"rows"}), formats
        (killed,) = _cut_short(settings)
        api.server.delay = 0.0
        load_sources(settings, ["events_api"])  # the rerun: lock released by the kernel, state intact
    # the rerun moved the killed extract aside (dlt itself neither lists nor removes it)
    assert _cut_short(settings) == [], "the killed extract is left in normalize/"
    kept = failed_packages_dir(_events_pipeline(settings)) / killed
    assert any(kept.glob("new_jobs/events.*")), "kept for inspection"
    deliveries, distinct = served_fit_events(sim.paths.events_db)
    assert wh(settings, "select count(*) from raw_events.events")[0][0] == deliveries
    assert wh(settings, "select count(distinct event_id) from raw_events.events")[0][0] == distinct
    lines = sum(len(p.read_text().splitlines()) - 1 for p in sim.paths.marketing_dir.iterdir())
    assert wh(settings, "select count(*) from raw_marketing.spend")[0][0] <= lines


DIE_AT_COMPLETE_LOAD = """
import os
from dlt.destinations.job_client_impl import SqlJobClientBase
from el.cli import main

def die(self, load_id):  # the package's rows and state are in the warehouse, its _dlt_loads record is not
    os._exit(9)

SqlJobClientBase.complete_load = die
main(["load", "events_api"])
"""


def test_a_pending_package_of_a_deleted_warehouse_is_not_loaded_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load killed before it recorded its package leaves it pending locally; the warehouse is then lost
    (deleted, or a new file put in its place). The rerun must not load that package on its own - it would
    recreate the raw table with that package's rows and cursor only, and every earlier row would be gone
    for good - but start the state afresh and extract everything the API serves again."""
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40, rates=Rates(duplicate=0.1, bad_row=0.02)))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        monkeypatch.setenv("SHOP_EVENTS_URL", api.url)
        monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
        load_sources(settings, ["events_api"])
        first = wh(settings, "select count(distinct event_id) from raw_events.events")[0][0]
        sim.advance(1)
        killed = subprocess.run(
            [sys.executable, "-c", DIE_AT_COMPLETE_LOAD], env=env_for(settings), capture_output=True, text=True
        )
        assert killed.returncode == 9, killed.stderr[-2000:]
        assert list(_events_pipeline(settings).glob("load/normalized/*")), "the killed load's package is pending"
        settings.warehouse.unlink()  # the warehouse is lost
        load_sources(settings, ["events_api"])
    deliveries, distinct = served_fit_events(sim.paths.events_db)
    assert distinct > first > 0, "both days served"
    assert wh(settings, "select count(*), count(distinct event_id) from raw_events.events") == [(deliveries, distinct)]


def test_kill_9_during_dbt_build_then_rerun_equals_full_refresh(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=30, rates=Rates(late=0.3, update=0.3)))
    runner = DbtRunner(settings, detect(settings.project_root))
    sim.advance(1)
    load_sources(settings)
    assert runner.run(["build", "--quiet"], capture=True).returncode == 0
    sim.advance(1)
    load_sources(settings)
    build = subprocess.Popen(
        runner.command(["build"]), cwd=settings.project_root, env=runner.env(), stdout=subprocess.PIPE, text=True
    )
    assert build.stdout is not None
    writing = False
    for line in build.stdout:  # kill once the build is writing models
        if " OK created " in line:
            writing = True
            break
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    assert writing, "the build never wrote a model"
    assert build.returncode == -signal.SIGKILL, f"the build ended by itself ({build.returncode}) before the kill"
    rerun = runner.run(["build", "--quiet"], capture=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    # the incremental models (and fct_orders, a table on top of them), by schema
    models = {
        "main_staging": ["stg_events__events", "stg_shop__orders"],
        "main_intermediate": ["int_events__sessionized"],
        "main_marts": ["fct_orders", "fct_daily_revenue", "fct_user_daily_activity", "fct_sessions"],
    }
    watermarked = ("int_events__sessionized", "fct_daily_revenue", "fct_user_daily_activity", "fct_sessions")

    def content(schema: str, model: str) -> str:  # build bookkeeping (_watermark) is not content
        star = "* exclude (_watermark)" if model in watermarked else "*"
        return f"select {star} from {schema}.{model}"

    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("create schema if not exists after_crash")
        for schema, names in models.items():
            for model in names:
                conn.execute(f"create table after_crash.{model} as {content(schema, model)}")
    full = runner.run(["build", "--full-refresh", "--quiet"], capture=True)
    assert full.returncode == 0, full.stdout[-3000:]
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        for schema, model in ((schema, model) for schema, names in models.items() for model in names):
            rebuilt, crashed = content(schema, model), f"select * from after_crash.{model}"
            diff = conn.execute(
                f"select count(*) from (({rebuilt} except all {crashed}) union all ({crashed} except all {rebuilt}))"
            ).fetchone()[0]
            assert diff == 0, model
