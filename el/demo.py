"""The README's demo: simulate days of shop activity and run the pipeline after each day."""

from __future__ import annotations

import shutil

from el.dbt import DbtRunner, dbt_executable
from el.mode import detect
from el.settings import Settings
from shopsim import SimConfig, Simulator


def run_demo(settings: Settings, days: int, scale: int, seed: int) -> int:
    mode = detect(settings.project_root, dbt_executable(), settings.project_root)
    print(mode.summary(), flush=True)
    for path in (settings.sources_root, settings.warehouse):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    simulator = Simulator(settings.sources_root, SimConfig(seed=seed, scale=scale))
    runner = DbtRunner(settings, mode)
    for _ in range(days):
        (day,) = simulator.advance(1)
        print(f"demo: simulated {day}", flush=True)
        build = runner.run(["build"])
        if build.returncode != 0:
            print(f"demo: dbt build failed after {day}", flush=True)
            return build.returncode
    print(mode.summary())
    print(f"demo: warehouse at {settings.warehouse}")
    return 0
