"""`el run`: one run id across steps and metrics, clear failures, refusal of a second run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from el.lock import exclusive
from el.mode import detect
from el.pipeline import PipelineRun, RunOptions
from shopsim import SimConfig, Simulator
from tests.python.el_helpers import settings_for, wh

pytestmark = pytest.mark.slow


def _env(settings) -> dict[str, str]:
    return {**os.environ, "SHOP_WAREHOUSE": str(settings.warehouse), "SHOP_SOURCES": str(settings.sources_root)}


def test_run_records_every_step_under_one_run_id(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=20)).advance(1)
    run = PipelineRun(settings, detect(settings.project_root), "test-run-1", RunOptions(quiet=True))
    results = {r.step: r.status for r in run.execute()}
    assert results["load"] == "ok" and results["dbt build"] == "ok" and results["source freshness"] == "ok"
    expected_report = "ok" if run.mode.full else "skipped"
    assert results["elementary report"] == expected_report
    steps = wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'test-run-1'")
    assert dict(steps) == {**results, "run": "ok"}  # step `run`: the whole run, recorded as started first
    metric_runs = wh(settings, "select distinct run_id from el_meta.load_metrics")
    assert metric_runs == [("test-run-1",)]
    assert wh(settings, "select count(*) from main_marts.fct_orders")[0][0] > 0
    assert "result: ok" in run.summary()


def test_failed_load_stops_the_run_with_a_clear_summary(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    env = {**_env(settings), "SHOP_DB_URL": "postgresql://postgres@127.0.0.1:1/nothing"}
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "run", "--run-id", "broken-1"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert "load               failed" in done.stdout and "source database unreachable" in done.stdout
    assert "dbt build          skipped" in done.stdout
    assert "result: FAILED at load" in done.stdout
    assert wh(settings, "select status from el_meta.pipeline_runs where step = 'load'") == [("failed",)]


def test_second_run_is_refused_and_bad_dates_rejected(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with exclusive(settings.warehouse, "another el run"):
        done = subprocess.run(
            [sys.executable, "-m", "el.cli", "run"], capture_output=True, text=True, env=_env(settings), check=False
        )
    assert done.returncode == 2 and "refused: another el run" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "el.cli", "run", "--from", "2026-02-01", "--to", "2026-01-01"],
        capture_output=True,
        text=True,
        env=_env(settings),
        check=False,
    )
    assert bad.returncode == 2 and "--to is before --from" in bad.stderr
