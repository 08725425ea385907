"""`shopsim demo` (what `make demo` runs): simulate days of shop activity, serve the simulated events
API, and run the whole pipeline (`el run`) after each day. The pipeline knows nothing of the
simulator: it reads the simulated shop database and file drops where the settings say, and the
events API at the URL this demo passes in."""

from __future__ import annotations

import shutil

from el.dbt import DbtRunner, dbt_executable
from el.load import new_run_id
from el.mode import detect
from el.pipeline import PipelineRun, RunOptions, report_path
from el.settings import Settings
from shopsim.api import EventsApi
from shopsim.config import SimConfig
from shopsim.simulator import Simulator


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
        with EventsApi(simulator.paths.events_db) as api:
            options = RunOptions(quiet=index < days - 1, events_url=api.url)
            run = PipelineRun(settings, mode, new_run_id(), options)
            results = run.execute()
        print(run.summary(), flush=True)
        failed = failed or any(r.status == "failed" for r in results)
    docs = DbtRunner(settings, mode).run(["docs", "generate", "--static", "--quiet"])
    docs_site, report = settings.target_dir / "static_index.html", report_path(settings)
    print()
    print(mode.summary())
    print(f"demo: warehouse          {settings.warehouse}")
    print("demo: load metrics       select * from el_meta.load_metrics / el_meta.pipeline_runs")
    if docs.returncode == 0 and docs_site.exists():
        print(f"demo: dbt docs           {docs_site}")
    else:
        print("demo: dbt docs           not written (`dbt docs generate` failed, see above)")
    if not mode.full:
        print("demo: Elementary report  not built in core mode (install the dbt packages with `dbt deps`)")
    elif report.exists():
        print(f"demo: Elementary report  {report}")
    else:
        print("demo: Elementary report  not written (see the `elementary report` step above)")
    return 1 if failed or docs.returncode != 0 else 0
