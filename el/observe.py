"""What a run tells the outside world: Prometheus metrics (el.prom), OpenLineage events (el.lineage) and
Elementary's data-quality alerts (`edr monitor`, full mode). The pipeline calls `step_done` after each
step and `run_done` once at its end; nothing here can fail the run (problems are warnings)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import TYPE_CHECKING

from el import lineage, prom
from el.alerts import webhook_url
from el.metrics import LoadMetric
from el.mode import elementary_off
from el.settings import Settings
from el.warehouse import MissingTableError

if TYPE_CHECKING:
    from el.pipeline import PipelineRun, StepResult

RUN_JOB = "shop_elt"
STREAM_JOB = "shop_stream"


def _say(text: str) -> None:
    print(f"el observe: {text}", file=sys.stderr, flush=True)


def _loads_since(settings: Settings, run_id: str, since: dt.datetime) -> list[LoadMetric]:
    try:
        rows = settings.warehouse_db.fetch(
            "select * from el_meta.load_metrics where run_id = ? and started_at >= ? order by started_at",
            (run_id, since),
        )
    except MissingTableError:
        return []
    return [LoadMetric(**row) for row in rows]


def step_done(run: PipelineRun, result: StepResult) -> None:
    """Lineage of a finished step: the tables a load step wrote, the nodes a dbt build built."""
    if result.status == "skipped":
        return
    finished = dt.datetime.now(dt.UTC)
    started = finished - dt.timedelta(seconds=result.seconds) - dt.timedelta(seconds=1)
    try:
        emitter = lineage.emitter(run.settings, run.run_id)
        if emitter is None:
            return
        if result.step == "load" or result.step.startswith("load "):
            if not emitter.loads(_loads_since(run.settings, run.run_id, started)) and result.status == "failed":
                emitter.failed_step(result.step, started, finished, result.detail)
        elif result.step == "dbt build":
            target = run.settings.target_dir
            if (target / "run_results.json").is_file() and (target / "manifest.json").is_file():
                emitter.dbt_build(target)
            elif result.status == "failed":
                emitter.failed_step(result.step, started, finished, result.detail)
    except Exception as exc:  # lineage is an observer: it never fails the step it describes
        _say(f"warning: lineage of step {result.step} not emitted: {exc}")


def run_done(
    settings: Settings,
    run_id: str,
    started: dt.datetime | None = None,
    full_mode: bool = False,
    dbt_nodes: dict[tuple[str, str], int] | None = None,
    stopped: bool = False,
) -> None:
    """At the end of a run (after el_meta.pipeline_runs is written): metrics, the lineage parent run and,
    in full mode, Elementary's alerts to the webhook. `dbt_nodes`: the dbt counts of a DAG run (its dbt
    ran as Cosmos tasks, not as one `dbt build` with a run_results.json)."""
    try:
        snapshot = prom.from_warehouse(settings, RUN_JOB, run_id)
    except Exception as exc:
        _say(f"warning: metrics of run {run_id} not read from the warehouse: {exc}")
        snapshot = prom.RunSnapshot(RUN_JOB, run_id, finished=True, failed=True)
    if dbt_nodes is not None:
        snapshot.dbt_nodes = dbt_nodes
    path = prom.export(settings, snapshot)
    if path:
        print(f"el: metrics of run {run_id} written to {path}", flush=True)
    emitter = lineage.emitter(settings, run_id)
    if emitter is not None:
        try:
            emitter.pipeline(started or dt.datetime.now(dt.UTC), snapshot.failed)
            print(f"el: lineage of run {run_id} emitted to {emitter.where}", flush=True)
        except Exception as exc:
            _say(f"warning: lineage of run {run_id} not emitted: {exc}")
    if stopped:  # a stopped run must end within its stop's grace period; edr monitor may take minutes
        print("el: elementary alerts skipped - the run was stopped", flush=True)
        return
    try:
        edr_monitor(settings, full_mode)
    except Exception as exc:
        _say(f"warning: edr monitor not run: {exc}")


def edr_monitor(settings: Settings, full_mode: bool) -> bool:
    """Full mode: `edr monitor` sends Elementary's alerts (failed/warned tests, anomalies) to the
    SHOP_ALERT_WEBHOOK_URL webhook. Core mode has no Elementary package, and on Spark it is off
    (dbt_project.yml): said, skipped."""
    off = elementary_off(full_mode, settings.engine)
    if off:
        print(f"el: elementary alerts skipped - {off}", flush=True)
        return False
    url = webhook_url()
    if not url:
        print("el: elementary alerts skipped - no webhook (set SHOP_ALERT_WEBHOOK_URL)", flush=True)
        return False
    from el.dbt import DbtRunner
    from el.mode import detect

    try:
        done = DbtRunner(settings, detect(settings.project_root)).edr("monitor", "--slack-webhook", url, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"warning: edr monitor failed: {exc}")
        return False
    if done.returncode != 0:
        _say(f"warning: edr monitor exited {done.returncode}")
    return done.returncode == 0


def stream_progress(settings: Settings, report: object, metrics: list[LoadMetric], failed: bool = False) -> None:
    """`el stream`: the batch totals of the run so far (called after every batch and at its end)."""
    run_id = str(getattr(report, "run_id", "?"))
    merged: dict[tuple[str, str], LoadMetric] = {}
    for m in metrics:
        old = merged.get((m.pipeline_name, m.table_name))
        merged[(m.pipeline_name, m.table_name)] = (
            m if old is None else LoadMetric(
                run_id, m.pipeline_name, m.table_name, old.rows_loaded + m.rows_loaded, old.rejects + m.rejects,
                old.bytes + m.bytes, old.seconds + m.seconds, m.load_id, old.started_at, m.finished_at,
                "failed" if "failed" in (old.status, m.status) else "ok",
            )
        )  # fmt: skip
    now = dt.datetime.now(dt.UTC).timestamp()
    snapshot = prom.RunSnapshot(
        STREAM_JOB,
        run_id,
        finished=bool(getattr(report, "stopped_by", None)) or failed,
        failed=failed or any(m.status == "failed" for m in metrics),
        loads=list(merged.values()),
        last_success={} if failed else {"stream batch": now},
        extra={
            "shop_stream_batches": float(getattr(report, "batches", 0)),
            "shop_stream_messages": float(getattr(report, "messages", 0)),
        },
    )
    prom.export(settings, snapshot)
