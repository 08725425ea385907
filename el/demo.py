"""The README's demo: simulate days of shop activity and run the whole pipeline after each day."""

from __future__ import annotations

import shutil

from el.dbt import DbtRunner, dbt_executable
from el.load import new_run_id
from el.mode import detect
from el.pipeline import PipelineRun, RunOptions, report_path
from el.settings import Settings
from shopsim import SimConfig, Simulator


def _reset(settings: Settings) -> None:
    for path in (settings.sources_root, settings.warehouse.parent / ".dlt_pipelines"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (settings.warehouse, settings.warehouse.with_name(settings.warehouse.name + ".wal")):
        path.unlink(missing_ok=True)


def run_demo(settings: Settings, days: int, scale: int, seed: int) -> int:
    mode = detect(settings.project_root, dbt_executable(), settings.project_root)
    _reset(settings)
    simulator = Simulator(settings.sources_root, SimConfig(seed=seed, scale=scale))
    failed = False
    for index in range(days):
        (day,) = simulator.advance(1)
        print(f"demo: simulated {day} ({index + 1}/{days})", flush=True)
        run = PipelineRun(settings, mode, new_run_id(), RunOptions(quiet=index < days - 1))
        results = run.execute()
        print(run.summary(), flush=True)
        failed = failed or any(r.status == "failed" for r in results)
    docs = DbtRunner(settings, mode).run(["docs", "generate", "--static", "--quiet"])
    print()
    print(mode.summary())
    print(f"demo: warehouse          {settings.warehouse}")
    print("demo: load metrics       select * from el_meta.load_metrics / el_meta.pipeline_runs")
    if docs.returncode == 0:
        print(f"demo: dbt docs           {settings.project_root / 'target' / 'static_index.html'}")
    if mode.full:
        print(f"demo: Elementary report  {report_path(settings)}")
    else:
        print("demo: Elementary report  not built in core mode (install the dbt packages with `dbt deps`)")
    return 1 if failed or docs.returncode != 0 else 0
