"""`el run`: load -> dbt build -> source freshness -> Elementary report, under one run id.

dbt build and source freshness run in one dbt process (el.dbt_batch: one start-up, one parse).

Every step is timed and recorded in el_meta.pipeline_runs with the run id that the load metrics
carry too. A failed load stops the run; a failed build still runs freshness and the report (the
report is most useful when tests fail); the exit status is non-zero when any step failed.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from el import observe
from el.config import ConfigError
from el.dbt import DbtRunner
from el.dbt_batch import DbtBatch, needs_forwarding
from el.load import LoadError, run_load
from el.lock import AlreadyRunningError, exclusive
from el.mode import ELEMENTARY_OFF_IN_CORE_MODE, Mode, elementary_off
from el.settings import Settings
from el.warehouse import WarehouseError

DDL = """
create schema if not exists el_meta;
create table if not exists el_meta.pipeline_runs (
    run_id varchar not null,
    step varchar not null,
    status varchar not null,
    seconds double precision not null,
    detail varchar,
    finished_at timestamptz not null
);
"""


RUN_ID_ENV = "SHOP_RUN_ID"


@dataclass(frozen=True)
class RunOptions:
    sources: tuple[str, ...] = ()
    full_refresh: bool = False
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    quiet: bool = False
    events_url: str | None = None  # overrides SHOP_EVENTS_URL

    def dbt_vars(self) -> dict[str, Any]:
        """Only a backfill passes vars: changed vars make dbt re-parse the whole project (the run id
        goes through the environment, SHOP_RUN_ID)."""
        variables: dict[str, Any] = {}
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


EDR_PACKAGES = ("dbt_utils", "elementary")
HUB_URL = "https://hub.getdbt.com"


def edr_packages_dir() -> Path:
    """Where edr's internal dbt project keeps its packages (SHOP_EDR_PACKAGES_DIR overrides it)."""
    override = os.environ.get("SHOP_EDR_PACKAGES_DIR")
    if override:
        return Path(override)
    import elementary

    return Path(elementary.__file__).parent / "monitor" / "dbt_project" / "dbt_packages"


def hub_reachable(timeout: float = 3.0) -> bool:
    url = urllib.parse.urlsplit(os.environ.get("SHOP_DBT_HUB_URL", HUB_URL))
    try:
        socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def edr_not_ready() -> str | None:
    """None when `edr report` can run; else one line: what is missing and how to get it."""
    folder = edr_packages_dir()
    missing = [name for name in EDR_PACKAGES if not (folder / name / "dbt_project.yml").is_file()]
    if not missing or hub_reachable():  # edr runs `dbt deps` for its project itself when online
        return None
    return (
        f"edr's internal dbt project lacks {', '.join(missing)} and the package hub is unreachable; "
        f"online, `el run` installs them (edr runs `dbt deps` itself); offline, copy the packages into {folder}"
    )


def elementary_not_built(settings: Settings) -> str | None:
    """None when the warehouse holds Elementary's results table (its models are built by the first
    full-mode `dbt build`, and edr reads them); else one line saying why the report has nothing to show.
    A DuckDB or PostgreSQL warehouse (on Spark the package is off: `elementary_off`)."""
    warehouse = settings.warehouse_db
    if warehouse.engine == "duckdb" and not warehouse.path.exists():
        return "the warehouse does not exist yet"
    rows = warehouse.fetch(
        "select count(*) as tables from information_schema.tables where table_name = 'elementary_test_results'"
    )
    if rows[0]["tables"]:
        return None
    return "no Elementary results in the warehouse yet: no dbt build has created Elementary's models"


def report_path(settings: Settings) -> Path:
    return settings.target_dir / "elementary" / "elementary_report.html"


def check_dbt_exit(args: list[str], exit_code: int, error: str = "") -> None:
    """Nothing when `dbt <args>` exited 0; otherwise StepFailedError "`dbt <args>` exited N", followed by
    the first line of `error` when there is one."""
    if exit_code != 0:
        first_line = f": {error.splitlines()[0]}" if error.strip() else ""
        raise StepFailedError(f"`dbt {' '.join(args)}` exited {exit_code}{first_line}")


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
        except StepSkippedError as exc:
            detail, status = str(exc), "skipped"
        except WarehouseError as exc:  # e.g. the file locked by another process: its message says it all
            detail, status = str(exc).splitlines()[0], "failed"
        except Exception as exc:  # a bug or an unforeseen error: the run still ends recorded, with metrics
            traceback.print_exc()
            detail, status = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", "failed"
        result = StepResult(name, status, time.perf_counter() - clock, detail)
        self.results.append(result)
        self.say(f"{name}: {status} in {result.seconds:.1f}s{' - ' + detail if detail else ''}")
        observe.step_done(self, result)  # lineage (el.observe never raises)
        return result

    def skip(self, name: str, why: str) -> None:
        self.results.append(StepResult(name, "skipped", 0.0, why))
        self.say(f"{name}: skipped - {why}")

    def _args(self, args: list[str]) -> list[str]:
        return [*args, "--quiet"] if self.options.quiet else args

    def _dbt(self, args: list[str]) -> str:
        args = self._args(args)
        done = self.dbt.run(args, self.options.dbt_vars(), extra_env={RUN_ID_ENV: self.run_id})
        check_dbt_exit(args, done.returncode)
        return ""  # a dbt step that passed has no detail

    @staticmethod
    def _batched(batch: DbtBatch, args: list[str]) -> str:
        result = batch.next_result()
        check_dbt_exit(args, result.exit_code, result.error)
        return ""  # a dbt step that passed has no detail

    def build_args(self) -> list[str]:
        return ["build", *(["--full-refresh"] if self.options.full_refresh else [])]

    def freshness_args(self) -> list[str]:
        return ["source", "freshness"]

    def load(self) -> str:
        try:
            metrics = run_load(
                self.settings,
                list(self.options.sources) or None,
                self.run_id,
                hold_lock=False,
                events_url=self.options.events_url,
            )
        except (ConfigError, LoadError, AlreadyRunningError) as exc:  # the last: a pipeline folder's lock
            raise StepFailedError(str(exc)) from exc
        return f"{sum(m.rows_loaded for m in metrics)} rows, {sum(m.rejects for m in metrics)} rejects"

    def build(self) -> str:
        return self._dbt(self.build_args())

    def freshness(self) -> str:
        return self._dbt(self.freshness_args())

    def dbt_steps(self, one_process: bool = True) -> None:
        """The steps `dbt build` and `source freshness`, each timed and recorded on its own; freshness
        runs whatever the build's outcome. One process (el.dbt_batch): the project is parsed once and
        the build step's time includes the process start-up and that parse; two processes: one dbt
        process per step, as before (kept for the benchmark's comparison). The artifacts an earlier run
        left go first: a dbt that fails before writing its own (a parse error, a warehouse it cannot open)
        must not have the last run's node counts and lineage reported as this run's."""
        for artifact in ("run_results.json", "sources.json"):
            (self.settings.target_dir / artifact).unlink(missing_ok=True)
        if not one_process:
            self.step("dbt build", self.build)
            self.step("source freshness", self.freshness)
            return
        build, freshness = self._args(self.build_args()), self._args(self.freshness_args())
        batch = self.dbt.batch([build, freshness], self.options.dbt_vars(), extra_env={RUN_ID_ENV: self.run_id})
        try:
            self.step("dbt build", lambda: self._batched(batch, build))
            self.step("source freshness", lambda: self._batched(batch, freshness))
        except BaseException as stop:  # stopped: the dbt child goes before the run (and its lock) does
            batch.stop(forward=needs_forwarding(stop))
            raise
        finally:
            batch.close()

    def report(self) -> str:
        # Elementary off first: on Spark whatever edr has (and no hub probe for nothing)
        off = elementary_off(self.mode.full, self.settings.engine)
        not_ready = off or edr_not_ready() or elementary_not_built(self.settings)
        if not_ready:
            raise StepSkippedError(not_ready)
        # freshness results need no `edr run-operation upload-source-freshness`: Elementary's
        # on-run-end hook already uploaded them during `dbt source freshness`
        path = report_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = self.dbt.edr("report", "--file-path", str(path), "--open-browser", "false")
        if done.returncode != 0 or not path.exists():
            raise StepFailedError(f"edr report exited {done.returncode}; no report written")
        return f"report at {path}"

    def execute(self) -> list[StepResult]:
        self.say(self.mode.summary())
        off = elementary_off(self.mode.full, self.settings.engine)
        if self.mode.full and off:  # on Spark
            self.say(f"but {off}: its tests, the report and its alerts are skipped")
        started = dt.datetime.now(dt.UTC)
        stopped = False
        with exclusive(self.settings.warehouse_db, f"el run {self.run_id}"):
            self.begin()
            try:
                if self.step("load", self.load).status == "failed":
                    self.skip("dbt build", "load failed")
                    self.skip("source freshness", "load failed")
                    self.skip("elementary report", "load failed")
                else:
                    self.dbt_steps()
                    if self.mode.full:
                        self.step("elementary report", self.report)
                    else:
                        self.skip("elementary report", ELEMENTARY_OFF_IN_CORE_MODE)
            except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM) or broken between steps: a failed run
                stopped = isinstance(exc, KeyboardInterrupt)
                self.results.append(StepResult("interrupted", "failed", 0.0, f"stopped by {type(exc).__name__}"))
                raise
            finally:  # also when something outside a step raised: the run is recorded and exported
                self.record()
                # metrics, lineage, Elementary's alerts (not when stopped: they may take minutes)
                observe.run_done(self.settings, self.run_id, started, self.mode.full, stopped=stopped)
        return self.results

    def begin(self) -> None:
        """Record the run as `started` (step `run`) before any work, so a killed run leaves a trace; runs
        still `started` now are dead (this run holds the lock): they become `interrupted`."""
        self.clock = time.perf_counter()
        try:
            self.settings.warehouse_db.execute(
                DDL,
                [
                    (
                        "update el_meta.pipeline_runs set status = 'interrupted', "
                        "detail = 'no finish recorded (killed or crashed)' where step = 'run' and status = 'started'",
                        (),
                    ),
                    (
                        "insert into el_meta.pipeline_runs values (?, 'run', 'started', 0, null, ?)",
                        (self.run_id, dt.datetime.now(dt.UTC)),
                    ),
                ],
            )
        except WarehouseError as exc:  # the load step reports the locked warehouse clearly
            self.say(f"run not recorded as started: {str(exc).splitlines()[0]}")

    def record(self) -> None:
        now = dt.datetime.now(dt.UTC)
        failed = any(r.status == "failed" for r in self.results)
        seconds = time.perf_counter() - getattr(self, "clock", time.perf_counter())
        steps = [
            (
                "insert into el_meta.pipeline_runs values (?, ?, ?, ?, ?, ?)",
                (self.run_id, r.step, r.status, r.seconds, r.detail, now),
            )
            for r in self.results
        ]
        try:
            self.settings.warehouse_db.execute(
                DDL,
                [
                    *steps,
                    (
                        "update el_meta.pipeline_runs set status = ?, seconds = ?, finished_at = ? "
                        "where run_id = ? and step = 'run'",
                        ("failed" if failed else "ok", seconds, now, self.run_id),
                    ),
                ],
            )
        except WarehouseError as exc:  # never hide the step's own error behind this one
            self.say(f"run steps not recorded in el_meta.pipeline_runs: {str(exc).splitlines()[0]}")

    def summary(self) -> str:
        lines = [f"run {self.run_id} summary ({self.mode.name} mode):"]
        lines += [f"  {r.step:<18} {r.status:<8} {r.seconds:7.1f}s  {r.detail}" for r in self.results]
        failed = [r.step for r in self.results if r.status == "failed"]
        lines.append(f"  result: {'FAILED at ' + ', '.join(failed) if failed else 'ok'}")
        return "\n".join(lines)


class StepFailedError(RuntimeError):
    """A pipeline step failed; the message says which command and how."""


class StepSkippedError(RuntimeError):
    """A step cannot run here; the message says why and how to make it run."""
