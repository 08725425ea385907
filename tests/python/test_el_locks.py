"""Real processes: `el dbt` takes the warehouse lock, a locked warehouse fails `el run` cleanly, a killed run
is recorded (started, then interrupted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from el.load import OWNER_FILE, Loader, failed_packages_dir, warehouse_identity
from el.lock import exclusive
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from tests.python.el_helpers import (
    env_for,
    run_el,
    served_fit_events,
    settings_for,
    warehouse_held_elsewhere,
    wh,
)

pytestmark = pytest.mark.slow


def test_el_dbt_is_refused_while_a_run_holds_the_warehouse(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with exclusive(settings.warehouse, "el run r-1"):
        done = run_el(settings, "dbt", "ls")
    assert done.returncode == 2 and "el dbt: refused: el run r-1" in done.stderr


def test_el_run_against_a_locked_warehouse_fails_cleanly_before_extracting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    with warehouse_held_elsewhere(settings) as holder:
        done = run_el(settings, "run", "--source", "marketing_files")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert f"locked by process {holder.pid}" in done.stdout
    assert not [p for p in settings.pipelines_dir.glob("*/*/*/*") if "loaded" not in p.parts], "no pending package"


def test_killed_run_is_recorded_started_then_interrupted(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        api.server.delay = 0.05
        run = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "run", "--source", "events_api", "--run-id", "killed-1"],
            env=env_for(settings, SHOP_EVENTS_URL=api.url, SHOP_EVENTS_PAGE_SIZE="10"),
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while api.server.requests < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    assert wh(settings, "select status from el_meta.pipeline_runs where run_id = 'killed-1'") == [("started",)]
    done = run_el(settings, "run", "--source", "shop_db", "--run-id", "next-1",
               SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/none")  # fmt: skip
    assert done.returncode == 1
    runs = dict(wh(settings, "select run_id, status from el_meta.pipeline_runs where step = 'run'"))
    assert runs == {"killed-1": "interrupted", "next-1": "failed"}


def test_second_warehouse_in_the_same_folder_is_refused_while_the_first_extracts(tmp_path: Path) -> None:
    """Two DuckDB files in one folder share its pipeline folders (docs/operations.md): while one `el load`
    extracts, a load into the other file is refused cleanly instead of setting the first's extract aside;
    the first then loads every served event."""
    first = settings_for(tmp_path)
    second = replace(first, warehouse=first.warehouse.with_name("other.duckdb"))
    sim = Simulator(first.sources_root, SimConfig(scale=40))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        api.server.delay = 0.5  # ~30 pages: the first load is still extracting when the second starts
        extra = {"SHOP_EVENTS_URL": api.url, "SHOP_EVENTS_PAGE_SIZE": "10", "SHOP_EVENTS_LAG_HOURS": "0"}
        loader = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "load", "events_api"],
            env=env_for(first, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while api.server.requests < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = run_el(second, "load", "events_api", **extra)
        api.server.delay = 0.0
        out, err = loader.communicate(timeout=120)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr + refused.stdout
    assert "refused: el load events_api" in refused.stderr + refused.stdout
    assert ".dlt_pipelines/events_api" in refused.stderr + refused.stdout
    assert loader.returncode == 0, out + err
    assert "moved aside" not in err
    fit, _ = served_fit_events(sim.paths.events_db)
    assert wh(first, "select count(*) from raw_events.events")[0][0] == fit > 0


def test_two_warehouses_in_one_folder_each_load_every_row_from_their_own_cursors(tmp_path: Path) -> None:
    """Two DuckDB files in one folder share its pipeline folders. Taking turns, the second used to load from
    the first's newer cursors and skip every row the first already had (day 2: 0 rows, exit 0). The folder
    records its warehouse; another warehouse's state is dropped and each restores its own from itself."""
    first = settings_for(tmp_path)
    second = replace(first, warehouse=first.warehouse.with_name("other.duckdb"))
    sim = Simulator(first.sources_root, SimConfig(scale=20))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        extra = {"SHOP_EVENTS_URL": api.url, "SHOP_EVENTS_LAG_HOURS": "0"}
        turns = []
        for day in range(2):
            if day:
                sim.advance(1)
            turns += [run_el(first, "load", "events_api", **extra), run_el(second, "load", "events_api", **extra)]
    assert all(turn.returncode == 0 for turn in turns), [t.stdout + t.stderr for t in turns]
    assert "held the state of warehouse" in turns[-1].stderr  # the switch is said, not silent
    fit, distinct = served_fit_events(sim.paths.events_db)
    for settings in (first, second):
        assert wh(settings, "select count(*), count(distinct event_id) from raw_events.events") == [(fit, distinct)]
    assert fit > 0


def test_claiming_another_warehouses_pipeline_folder_drops_its_state_but_not_the_failed_packages_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copies of packages set aside are there for a person to inspect: a switch of warehouse drops the
    other warehouse's state and packages, and dlt then wipes the folder it opens without local state; the
    copies live outside that folder and survive both."""
    settings = settings_for(tmp_path)
    working = settings.pipelines_dir / "events_api"
    (working / "normalize" / "extracted" / "123").mkdir(parents=True)
    (working / "state.json").write_text("{}")
    kept = failed_packages_dir(working) / "456" / "new_jobs" / "events.parquet"
    kept.parent.mkdir(parents=True)
    kept.write_text("kept")
    (working / OWNER_FILE).write_text("duckdb:/elsewhere/other.duckdb\n")
    with Loader(settings, "claim").locked_pipeline("events_api", "test claim") as pipeline:
        assert Path(pipeline.working_dir) == working
    assert not (working / "normalize" / "extracted" / "123").exists()
    assert (working / OWNER_FILE).read_text().strip() == warehouse_identity(settings.warehouse_db)
    assert kept.read_text() == "kept"
    assert "held the state of warehouse duckdb:/elsewhere/other.duckdb; dropped" in capsys.readouterr().err
