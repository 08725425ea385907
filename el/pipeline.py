"""`el run`: load -> dbt build -> source freshness -> Elementary report, under one run id.

Every step is timed and recorded in el_meta.pipeline_runs with the run id that the load metrics
carry too. A failed load stops the run; a failed build still runs freshness and the report (the
report is most useful when tests fail); the exit status is non-zero when any step failed.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from el.config import ConfigError
from el.dbt import DbtRunner
from el.load import LoadError, run_load
from el.lock import exclusive
from el.mode import Mode
from el.settings import Settings

DDL = """
create schema if not exists el_meta;
create table if not exists el_meta.pipeline_runs (
    run_id varchar not null,
    step varchar not null,
    status varchar not null,
    seconds double not null,
    detail varchar,
    finished_at timestamptz not null
);
"""


@dataclass(frozen=True)
class RunOptions:
    sources: tuple[str, ...] = ()
    full_refresh: bool = False
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    quiet: bool = False

    def dbt_vars(self, run_id: str) -> dict[str, Any]:
        variables: dict[str, Any] = {"run_id": run_id}
        if self.date_from:
            variables["backfill_from"] = self.date_from.isoformat()
            variables["backfill_to"] = (self.date_to or self.date_from).isoformat()
        return variables


@dataclass(frozen=True)
class StepResult:
    step: str
    status: str  # ok, failed, skipped
    seconds: float
    detail: str = ""


def report_path(settings: Settings) -> Path:
    return settings.target_dir / "elementary" / "elementary_report.html"


class PipelineRun:
    def __init__(self, settings: Settings, mode: Mode, run_id: str, options: RunOptions) -> None:
        self.settings = settings
        self.mode = mode
        self.run_id = run_id
        self.options = options
        self.dbt = DbtRunner(settings, mode)
        self.results: list[StepResult] = []

    def say(self, text: str) -> None:
        print(f"[run {self.run_id}] {text}", flush=True)

    def step(self, name: str, action: Callable[[], str]) -> StepResult:
        self.say(f"{name} ...")
        clock = time.perf_counter()
        try:
            detail, status = action(), "ok"
        except StepFailedError as exc:
            detail, status = str(exc), "failed"
        result = StepResult(name, status, time.perf_counter() - clock, detail)
        self.results.append(result)
        self.say(f"{name}: {status} in {result.seconds:.1f}s{' - ' + detail if detail else ''}")
        return result

    def skip(self, name: str, why: str) -> None:
        self.results.append(StepResult(name, "skipped", 0.0, why))
        self.say(f"{name}: skipped - {why}")

    def _dbt(self, args: list[str]) -> str:
        if self.options.quiet:
            args = [*args, "--quiet"]
        done = self.dbt.run(args, self.options.dbt_vars(self.run_id))
        if done.returncode != 0:
            raise StepFailedError(f"`dbt {' '.join(args)}` exited {done.returncode}")
        return ""

    def load(self) -> str:
        try:
            metrics = run_load(self.settings, list(self.options.sources) or None, self.run_id, hold_lock=False)
        except (ConfigError, LoadError) as exc:
            raise StepFailedError(str(exc)) from exc
        return f"{sum(m.rows_loaded for m in metrics)} rows, {sum(m.rejects for m in metrics)} rejects"

    def build(self) -> str:
        return self._dbt(["build", *(["--full-refresh"] if self.options.full_refresh else [])])

    def freshness(self) -> str:
        return self._dbt(["source", "freshness"])

    def report(self) -> str:
        edr = Path(sys.executable).with_name("edr")
        root = self.settings.project_root
        common = ["--project-dir", str(self.dbt.project_dir), "--profiles-dir", str(root)]
        common += ["--config-dir", str(root / ".edr")]  # no usage tracking
        # freshness results need no `edr run-operation upload-source-freshness`: Elementary's
        # on-run-end hook already uploaded them during `dbt source freshness`
        env = self.dbt.env()
        path = report_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(edr), "report", "--file-path", str(path), "--open-browser", "false", *common], env=env, check=False
        )
        if done.returncode != 0 or not path.exists():
            raise StepFailedError(f"edr report exited {done.returncode}")
        return f"report at {path}"

    def execute(self) -> list[StepResult]:
        self.say(self.mode.summary())
        with exclusive(self.settings.warehouse, f"el run {self.run_id}"):
            if self.step("load", self.load).status == "failed":
                self.skip("dbt build", "load failed")
                self.skip("source freshness", "load failed")
                self.skip("elementary report", "load failed")
            else:
                self.step("dbt build", self.build)
                self.step("source freshness", self.freshness)
                if self.mode.full:
                    self.step("elementary report", self.report)
                else:
                    self.skip("elementary report", "core mode: Elementary package not installed")
            self.record()
        return self.results

    def record(self) -> None:
        now = dt.datetime.now(dt.UTC)
        with duckdb.connect(str(self.settings.warehouse)) as conn:
            conn.execute(DDL)
            conn.executemany(
                "insert into el_meta.pipeline_runs values (?, ?, ?, ?, ?, ?)",
                [(self.run_id, r.step, r.status, r.seconds, r.detail, now) for r in self.results],
            )

    def summary(self) -> str:
        lines = [f"run {self.run_id} summary ({self.mode.name} mode):"]
        lines += [f"  {r.step:<18} {r.status:<8} {r.seconds:7.1f}s  {r.detail}" for r in self.results]
        failed = [r.step for r in self.results if r.status == "failed"]
        lines.append(f"  result: {'FAILED at ' + ', '.join(failed) if failed else 'ok'}")
        return "\n".join(lines)


class StepFailedError(RuntimeError):
    """A pipeline step failed; the message says which command and how."""
