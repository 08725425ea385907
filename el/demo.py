"""The README's demo: simulate days of shop activity and run the pipeline after each day."""

from __future__ import annotations

import shutil

from el.dbt import DbtRunner, dbt_executable
from el.load import new_run_id, run_load
from el.mode import detect
from el.settings import Settings
from shopsim import SimConfig, Simulator


def _reset(settings: Settings) -> None:
    for path in (settings.sources_root, settings.warehouse.parent / ".dlt_pipelines"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (settings.warehouse, settings.warehouse.with_name(settings.warehouse.name + ".wal")):
        path.unlink(missing_ok=True)


def run_demo(settings: Settings, days: int, scale: int, seed: int) -> int:
    mode = detect(settings.project_root, dbt_executable(), settings.project_root)
    print(mode.summary(), flush=True)
    _reset(settings)
    simulator = Simulator(settings.sources_root, SimConfig(seed=seed, scale=scale))
    runner = DbtRunner(settings, mode)
    for index in range(days):
        (day,) = simulator.advance(1)
        run_id = new_run_id()
        print(f"demo: {day} simulated; run {run_id}", flush=True)
        metrics = run_load(settings, run_id=run_id)
        print(f"demo: loaded {sum(m.rows_loaded for m in metrics)} rows, {sum(m.rejects for m in metrics)} rejects")
        build = runner.run(["build"] if index == days - 1 else ["build", "--quiet"])
        if build.returncode != 0:
            print(f"demo: dbt build failed after {day}", flush=True)
            return build.returncode
    freshness = runner.run(["source", "freshness"])
    print(mode.summary())
    print(f"demo: warehouse at {settings.warehouse}")
    return freshness.returncode
