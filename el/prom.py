"""Prometheus metrics of a run: always written to a textfile-collector file, pushed to a Pushgateway
when SHOP_PUSHGATEWAY_URL is set. Exporting never fails the pipeline: a problem is one warning line.

The numbers come from what the run recorded (el_meta.load_metrics, el_meta.pipeline_runs) and from
dbt's artifacts of the run (run_results.json of `dbt build`, sources.json of `dbt source freshness`).
Each job (`shop_elt`: `el run` and the Airflow DAG; `shop_stream`: `el stream`) is one Pushgateway
group and one file, replaced by every export: the series always describe that job's latest run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from el.metrics import LoadMetric
from el.settings import Settings
from el.warehouse import MissingTableError, Warehouse

PUSHGATEWAY_ENV = "SHOP_PUSHGATEWAY_URL"
METRICS_DIR_ENV = "SHOP_METRICS_DIR"
PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _say(text: str) -> None:
    print(f"el metrics: {text}", file=sys.stderr, flush=True)


def metrics_dir(settings: Settings) -> Path:
    """SHOP_METRICS_DIR, else `metrics/` next to the warehouse (data/metrics by default): point
    node_exporter's --collector.textfile.directory at it."""
    override = os.environ.get(METRICS_DIR_ENV)
    return Path(override) if override else settings.warehouse.parent / "metrics"


@dataclass
class RunSnapshot:
    """Everything one export says about a job's latest run."""

    job: str
    run_id: str
    finished: bool
    failed: bool
    loads: list[LoadMetric] = field(default_factory=list)
    steps: dict[str, tuple[str, float]] = field(default_factory=dict)  # step -> (status, seconds)
    last_success: dict[str, float] = field(default_factory=dict)  # step -> unix time of its last `ok`
    dbt_nodes: dict[tuple[str, str], int] = field(default_factory=dict)  # (resource type, status) -> count
    freshness: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # job-specific gauges (name -> value)


def dbt_node_counts(run_results: Path) -> dict[tuple[str, str], int]:
    """(resource type, status) -> nodes, from dbt's run_results.json: model success/error/skipped,
    test pass/warn/fail/error, seed and snapshot success/error."""
    counts: dict[tuple[str, str], int] = {}
    for result in json.loads(run_results.read_text())["results"]:
        key = (result["unique_id"].split(".", 1)[0], str(result["status"]))
        counts[key] = counts.get(key, 0) + 1
    return counts


# Airflow state of a Cosmos dbt task -> the dbt status it stands for (by the node kind's vocabulary)
_BUILD_STATUS = {"success": "success", "failed": "error", "upstream_failed": "skipped", "skipped": "skipped"}
_TEST_STATUS = {"success": "pass", "failed": "fail", "upstream_failed": "skipped", "skipped": "skipped"}


def cosmos_node_counts(states: Mapping[str, str | None], group: str = "dbt") -> dict[tuple[str, str], int]:
    """(resource type, status) -> tasks, from the Airflow states of the Cosmos task group `group` in a DAG
    run (task ids `<group>.<name>_<model|seed|snapshot>_build` and `<group>.<name>_test`). There dbt runs one
    task per node, so the counts are per task: a model's task builds the model and runs its tests, and fails
    when either fails (status `error`). Tasks that have not finished are left out."""
    counts: dict[tuple[str, str], int] = {}
    for task_id, state in states.items():
        if not task_id.startswith(f"{group}.") or state is None:
            continue
        name = task_id.removeprefix(f"{group}.")
        kind = next((k for k in ("model", "seed", "snapshot") if name.endswith(f"_{k}_build")), None)
        status = (_BUILD_STATUS if kind else _TEST_STATUS).get(state) if kind or name.endswith("_test") else None
        if status is not None:
            key = (kind or "test", status)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _seconds(rule: dict[str, Any] | None) -> float | None:
    if not rule or rule.get("count") is None or rule.get("period") not in PERIOD_SECONDS:
        return None
    return float(rule["count"]) * PERIOD_SECONDS[rule["period"]]


def freshness_results(sources_json: Path) -> list[dict[str, Any]]:
    """One entry per source table from sources.json: lag and thresholds in seconds."""
    rows = []
    for result in json.loads(sources_json.read_text())["results"]:
        _, _, source, table = result["unique_id"].split(".", 3)
        criteria = result.get("criteria") or {}
        rows.append(
            {
                "source": source,
                "table": table,
                "status": result.get("status"),
                "lag": result.get("max_loaded_at_time_ago_in_s"),
                "warn_after": _seconds(criteria.get("warn_after")),
                "error_after": _seconds(criteria.get("error_after")),
            }
        )
    return rows


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def _fetch(db: Warehouse, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    try:
        return db.fetch(sql, params)
    except MissingTableError:  # nothing recorded yet (a first run that failed early)
        return []


def from_warehouse(settings: Settings, job: str, run_id: str) -> RunSnapshot:
    """The snapshot of a run (`el run` or a DAG run) from el_meta and the dbt artifacts of the run."""
    db = settings.warehouse_db
    now = dt.datetime.now(dt.UTC)
    loads = [
        LoadMetric(run_id, r["source"], r["tbl"], int(r["rows"]), int(r["rejects"]), int(r["size"]),
                   float(r["secs"]), None, now, now, r["status"])
        for r in _fetch(
            db,
            "select pipeline_name as source, table_name as tbl, sum(rows_loaded) as rows, sum(rejects) as rejects, "
            "sum(bytes) as size, sum(seconds) as secs, "
            "case when bool_or(status = 'failed') then 'failed' else 'ok' end as status "
            "from el_meta.load_metrics where run_id = ? group by 1, 2 order by 1, 2",
            (run_id,),
        )
    ]  # fmt: skip
    steps = {
        r["step"]: (r["status"], float(r["seconds"]))
        for r in _fetch(db, "select step, status, seconds from el_meta.pipeline_runs where run_id = ?", (run_id,))
    }
    last_success = {
        r["step"]: _epoch(r["finished"])
        for r in _fetch(
            db,
            "select step, max(finished_at) as finished from el_meta.pipeline_runs where status = 'ok' group by step",
        )
    }
    run_status = steps.get("run", ("started", 0.0))[0]
    snapshot = RunSnapshot(
        job,
        run_id,
        finished=run_status != "started",
        failed=run_status == "failed" or any(status == "failed" for status, _ in steps.values()),
        loads=loads,
        steps=steps,
        last_success=last_success,
    )
    build = steps.get("dbt build", ("skipped", 0.0))[0]
    run_results = settings.target_dir / "run_results.json"
    if build in ("ok", "failed") and run_results.is_file():
        snapshot.dbt_nodes = dbt_node_counts(run_results)
    sources_json = settings.target_dir / "sources.json"
    if steps.get("source freshness", ("skipped", 0.0))[0] in ("ok", "failed") and sources_json.is_file():
        snapshot.freshness = freshness_results(sources_json)
    return snapshot


def registry_for(snapshot: RunSnapshot) -> CollectorRegistry:
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=registry)

    gauge("shop_run_info", "The run these series describe (value 1)", ["run_id"]).labels(snapshot.run_id).set(1)
    gauge("shop_run_failed", "1 when a step of the latest run failed, else 0").set(int(snapshot.failed))
    gauge("shop_run_finished", "1 when the latest run has finished, 0 while it runs").set(int(snapshot.finished))
    gauge("shop_run_export_timestamp_seconds", "When these series were exported").set_to_current_time()
    by_table = [("source", "table")]
    rows = gauge("shop_el_rows_loaded", "Rows loaded into raw by the latest run", *by_table)
    rejects = gauge("shop_el_rows_rejected", "Rows quarantined (rejects table) by the latest run", *by_table)
    size = gauge("shop_el_bytes_loaded", "Bytes of the load files of the latest run", *by_table)
    seconds = gauge("shop_el_load_duration_seconds", "Seconds the table's load took in the latest run", *by_table)
    failed_loads = gauge("shop_el_load_failed", "1 when loading the table failed in the latest run", *by_table)
    for metric in snapshot.loads:
        labels = (metric.pipeline_name, metric.table_name)
        rows.labels(*labels).set(metric.rows_loaded)
        rejects.labels(*labels).set(metric.rejects)
        size.labels(*labels).set(metric.bytes)
        seconds.labels(*labels).set(metric.seconds)
        failed_loads.labels(*labels).set(int(metric.status == "failed"))
    duration = gauge("shop_step_duration_seconds", "Seconds the step took in the latest run", ["step"])
    step_failed = gauge("shop_step_failed", "1 when the step failed in the latest run", ["step"])
    for step, (status, secs) in snapshot.steps.items():
        if status != "started":
            duration.labels(step).set(secs)
            step_failed.labels(step).set(int(status == "failed"))
    last = gauge("shop_step_last_success_timestamp_seconds", "When the step last succeeded (any run)", ["step"])
    for step, when in snapshot.last_success.items():
        last.labels(step).set(when)
    nodes = gauge("shop_dbt_nodes", "dbt nodes of the latest build by type and status", ["resource_type", "status"])
    for (kind, status), count in snapshot.dbt_nodes.items():
        nodes.labels(kind, status).set(count)
    lag = gauge("shop_source_freshness_lag_seconds", "Age of the newest row of the source table", *by_table)
    warn = gauge("shop_source_freshness_warn_after_seconds", "Freshness warn_after of the source table", *by_table)
    error = gauge("shop_source_freshness_error_after_seconds", "Freshness error_after of the table", *by_table)
    for row in snapshot.freshness:
        labels = (row["source"], row["table"])
        if row["lag"] is not None:
            lag.labels(*labels).set(row["lag"])
        if row["warn_after"] is not None:
            warn.labels(*labels).set(row["warn_after"])
        if row["error_after"] is not None:
            error.labels(*labels).set(row["error_after"])
    for name, value in snapshot.extra.items():
        gauge(name, f"{name.removeprefix('shop_').replace('_', ' ')} of the latest run").set(value)
    return registry


def export(settings: Settings, snapshot: RunSnapshot) -> Path | None:
    """Write the snapshot's textfile and push it when a Pushgateway is configured. Never raises."""
    path: Path | None = metrics_dir(settings) / f"{snapshot.job}.prom"
    try:
        registry = registry_for(snapshot)
    except Exception as exc:
        _say(f"warning: metrics of run {snapshot.run_id} not built: {exc}")
        return None
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
    except OSError as exc:
        _say(f"warning: metrics file {path} not written: {exc}")
        path = None
    url = os.environ.get(PUSHGATEWAY_ENV)
    if url:
        try:
            push_to_gateway(url, job=snapshot.job, registry=registry, timeout=10)
        except Exception as exc:  # an unreachable or refusing gateway must not fail the run
            _say(f"warning: metrics not pushed to {url}: {exc}")
    return path
