"""What the Airflow DAG's tasks run (orchestration/dags/shop_elt.py): the `el run` chain, split into tasks.

Nothing here imports Airflow: the callbacks take Airflow's context as a mapping. One run id per DAG run
(`airflow-<dag run id>`) is given to every task; it lands in el_meta.load_metrics and
el_meta.pipeline_runs exactly like an `el run` id. Every task that writes the warehouse holds the
warehouse lock (el.lock) for its own duration, so a hand-started `el run` is refused while it runs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import duckdb

from el import observe
from el.alerts import message, post
from el.lock import exclusive
from el.mode import detect
from el.pipeline import DDL, PipelineRun, RunOptions, StepFailedError, StepResult
from el.settings import Settings


def run_id_for(dag_run_id: str) -> str:
    """The el run id of a DAG run: `airflow-` and the DAG run id (scheduled__2026-01-02T02:00:00+00:00)."""
    return "airflow-" + re.sub(r"[^A-Za-z0-9_.:+-]", "_", dag_run_id)


def backfill_window(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """The dates a DAG run recomputes (`el run --from --to`): its data interval [start, end)."""
    last = end - dt.timedelta(microseconds=1) if end > start else start
    return start.date(), last.date()


@dataclass(frozen=True)
class TaskRun:
    """One DAG task's view of the pipeline run it belongs to."""

    settings: Settings
    run_id: str
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def pipeline(self) -> PipelineRun:
        options = RunOptions(date_from=self.date_from, date_to=self.date_to, quiet=True)
        return PipelineRun(self.settings, detect(self.settings.project_root), self.run_id, options)

    def begin(self) -> None:
        with exclusive(self.settings.warehouse_db, f"airflow {self.run_id} begin"):
            self.pipeline().begin()

    def step(self, name: str, action: Callable[[PipelineRun], str]) -> StepResult:
        """Run one step under the warehouse lock, record it in el_meta.pipeline_runs; raise if it failed
        (Airflow then retries the task), return it when it was ok or skipped."""
        run = self.pipeline()
        with exclusive(self.settings.warehouse_db, f"airflow {self.run_id} {name}"):
            result = run.step(name, lambda: action(run))
            record_steps(self.settings, self.run_id, [result])
        if result.status == "failed":
            raise StepFailedError(f"{name}: {result.detail}")
        return result

    def load(self, source: str, events_url: str | None = None) -> StepResult:
        def action(run: PipelineRun) -> str:
            run.options = RunOptions(sources=(source,), quiet=True, events_url=events_url)
            return run.load()

        return self.step(f"load {source}", action)

    def freshness(self) -> StepResult:
        return self.step("source freshness", PipelineRun.freshness)

    def report(self) -> StepResult:
        mode = self.pipeline().mode
        if not mode.full:
            why = f"core mode ({mode.reason}); the report needs full mode (`dbt deps` online)"
            result = StepResult("elementary report", "skipped", 0.0, why)
            record_steps(self.settings, self.run_id, [result])
            return result
        return self.step("elementary report", PipelineRun.report)

    def finish(self, failed_tasks: list[str], dbt_nodes: dict[tuple[str, str], int] | None = None) -> str:
        """Close the run's `run` row opened by `begin` (ok, or failed with the failed tasks named), then
        export the run's metrics and lineage (`dbt_nodes`: the dbt tasks' outcomes, see prom.cosmos_node_counts)."""
        status = "failed" if failed_tasks else "ok"
        detail = ("failed tasks: " + ", ".join(sorted(failed_tasks))) if failed_tasks else None
        with (
            exclusive(self.settings.warehouse_db, f"airflow {self.run_id} finish"),
            duckdb.connect(str(self.settings.warehouse)) as conn,
        ):
            conn.execute(DDL)
            now = dt.datetime.now(dt.UTC)
            started = conn.execute(
                "select min(finished_at) from el_meta.pipeline_runs where run_id = ? and step = 'run'", (self.run_id,)
            ).fetchone()
            seconds = (now - started[0]).total_seconds() if started and started[0] else 0.0
            conn.execute(
                "update el_meta.pipeline_runs set status = ?, seconds = ?, detail = ?, finished_at = ? "
                "where run_id = ? and step = 'run'",
                (status, seconds, detail, now, self.run_id),
            )
        observe.run_done(
            self.settings, self.run_id, full_mode=detect(self.settings.project_root).full, dbt_nodes=dbt_nodes
        )
        return status


def record_steps(settings: Settings, run_id: str, results: list[StepResult]) -> None:
    now = dt.datetime.now(dt.UTC)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(DDL)
        conn.executemany(
            "insert into el_meta.pipeline_runs values (?, ?, ?, ?, ?, ?)",
            [(run_id, r.step, r.status, r.seconds, r.detail, now) for r in results],
        )


# --- the warehouse lock around tasks that Airflow runs for us (the Cosmos dbt tasks) ---------------

_held: dict[str, ExitStack] = {}


def _key(context: Mapping[str, Any]) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"


def hold_warehouse(context: Mapping[str, Any]) -> None:
    """Operator `pre_execute` hook: take the warehouse lock for this task (raises AlreadyRunningError,
    which fails the task: it is retried). Released by `release_warehouse` or when the process ends."""
    settings = Settings.from_env()
    stack = ExitStack()
    stack.enter_context(exclusive(settings.warehouse_db, f"airflow {_key(context)}"))
    _held[_key(context)] = stack


def close_dbt_duckdb() -> None:
    """dbt-duckdb keeps its DuckDB connection open in the process after an in-process dbt invocation
    (Cosmos' DBT_RUNNER): close it with the lock, so the next writer (another process) can open the file."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = DuckDBConnectionManager._ENV
    if env is not None:
        try:
            env.close()
        except Exception as exc:  # closing is best effort; the process end closes it too
            print(f"el: could not close dbt-duckdb's connection: {exc}", flush=True)
    DuckDBConnectionManager.close_all_connections()


def release_warehouse(context: Mapping[str, Any]) -> None:
    close_dbt_duckdb()
    stack = _held.pop(_key(context), None)
    if stack is not None:
        stack.close()


# --- alerts -----------------------------------------------------------------------------------------


def task_failed(context: Mapping[str, Any]) -> None:
    """`on_failure_callback`: a task failed for good (retries exhausted): release the lock, alert."""
    release_warehouse(context)
    ti = context["ti"]
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if error is not None else "task failed (no exception recorded)"
    log_url = getattr(ti, "log_url", None)
    post(message("task failed", ti.dag_id, ti.task_id, run_id_for(ti.run_id), text[:2000], log_url))


def deadline_missed(context: Mapping[str, Any], **_: Any) -> None:
    """Deadline-alert callback: Airflow passes {"dag_run": {...}, "deadline": {...}} as `context`."""
    dag_run = context.get("dag_run") or {}
    deadline = (context.get("deadline") or {}).get("deadline_time")
    dag_id = str(dag_run.get("dag_id", "?"))
    run = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "?")
    error = f"the run was not finished by its deadline {deadline} (state {dag_run.get('state', '?')})"
    post(message("deadline missed", dag_id, None, run_id_for(run), error, None))
