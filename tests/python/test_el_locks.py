"""Real processes: `el dbt` takes the warehouse lock, a locked warehouse fails `el run` cleanly, a killed run
is recorded (started, then interrupted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from el.lock import exclusive
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from tests.python.el_helpers import env_for, settings_for, wh

pytestmark = pytest.mark.slow


def _env(settings, **extra: str) -> dict[str, str]:
    return env_for(settings, PYTHONPATH=str(Path(__file__).resolve().parents[2]), **extra)


def _el(settings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "el.cli", *args],
        capture_output=True,
        text=True,
        env=_env(settings, **extra),
        check=False,
    )


def test_el_dbt_is_refused_while_a_run_holds_the_warehouse(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with exclusive(settings.warehouse, "el run r-1"):
        done = _el(settings, "dbt", "ls")
    assert done.returncode == 2 and "el dbt: refused: el run r-1" in done.stderr


def test_el_run_against_a_locked_warehouse_fails_cleanly_before_extracting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(settings.warehouse)!r}); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = _el(settings, "run", "--source", "marketing_files")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert f"locked by process {holder.pid}" in done.stdout
    pipelines = settings.warehouse.parent / ".dlt_pipelines"
    assert not [p for p in pipelines.glob("*/*/*/*") if "loaded" not in p.parts], "no pending package"


def test_killed_run_is_recorded_started_then_interrupted(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40))
    sim.advance(1)
    with EventsApi(sim.paths.events_db) as api:
        api.server.delay = 0.05
        run = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "run", "--source", "events_api", "--run-id", "killed-1"],
            env=_env(settings, SHOP_EVENTS_URL=api.url, SHOP_EVENTS_PAGE_SIZE="10"),
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while api.server.requests < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    assert wh(settings, "select status from el_meta.pipeline_runs where run_id = 'killed-1'") == [("started",)]
    done = _el(settings, "run", "--source", "shop_db", "--run-id", "next-1",
               SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/none")  # fmt: skip
    assert done.returncode == 1
    runs = dict(wh(settings, "select run_id, status from el_meta.pipeline_runs where step = 'run'"))
    assert runs == {"killed-1": "interrupted", "next-1": "failed"}
