"""`el load`: run the dlt pipelines into the warehouse's raw_* datasets, one table at a time."""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.pipeline.exceptions import PipelineStepFailed

from el.config import SOURCES, ConfigError, SourceConfig
from el.contracts import REJECTS_TABLE
from el.lock import exclusive
from el.metrics import LoadMetric, store
from el.settings import Settings
from el.sources.events_api import events_resource
from el.sources.file_drops import spend_resource
from el.sources.shop_db import TABLES, shop_resources

DATASETS = {"shop_db": "raw_shop", "events_api": "raw_events", "marketing_files": "raw_marketing"}
# dlt settings of every pipeline (environment variables, e.g. LOAD__DELETE_COMPLETED_JOBS, still win):
# load files are transient - parquet without compression (cheaper to write, read once), deleted once
# their package is loaded; dlt would otherwise keep every extracted row on local disk forever.
DLT_DEFAULTS = {
    "load.delete_completed_jobs": True,
    "data_writer.compression": "none",
}


class LoadError(RuntimeError):
    """A load step failed; the message says which table, where and why. State was not advanced."""


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def _explain(exc: BaseException) -> str:
    """The root cause of a dlt step failure in one line a person can act on."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for err in chain:
        name, text = type(err).__name__, str(err).splitlines()[0] if str(err) else type(err).__name__
        if name in ("OperationalError", "InterfaceError") or "could not connect" in text.lower():
            return f"source database unreachable: {text[:300]}"
        if name in ("ConnectionError", "ConnectTimeout", "MaxRetryError", "NewConnectionError"):
            return f"events API unreachable: {text[:300]}"
        if "Could not set lock" in text or "Conflicting lock" in text:
            return "warehouse file is locked by another process (a running dbt or an open DuckDB session?)"
    root = chain[-1]
    return f"{type(root).__name__}: {str(root)[:300]}"


def check_warehouse(warehouse: Path) -> None:
    """Fail fast and clearly when another process holds the DuckDB file."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.IOException as exc:
        raise LoadError(f"warehouse {warehouse} cannot be opened for writing: {_explain(exc)}") from exc


NO_EVENTS_URL = (
    "SHOP_EVENTS_URL is not set: set it to the base URL of the events API (e.g. "
    "SHOP_EVENTS_URL=http://127.0.0.1:8765); for the demo store, serve it with "
    "`shopsim serve --root data/sources --port 8765`"
)


def default_progress() -> str | None:
    """dlt's progress display: on a terminal one bar per counter updating in place (tqdm, which
    sqlfluff depends on); elsewhere (CI, logs) none - the per-table summary line stays."""
    if not sys.stdout.isatty():
        return None
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return None
    return "tqdm"


class Loader:
    def __init__(self, settings: Settings, run_id: str, progress: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.progress = progress or default_progress()
        self.extracted_at = dt.datetime.now(dt.UTC)
        self.metrics: list[LoadMetric] = []
        for key, value in DLT_DEFAULTS.items():
            dlt.config[key] = value

    def pipeline(self, source: str) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=source,
            destination=dlt.destinations.duckdb(str(self.settings.warehouse)),
            dataset_name=DATASETS[source],
            pipelines_dir=str(self.settings.warehouse.parent / ".dlt_pipelines"),
            progress=self.progress,  # type: ignore[arg-type]
        )

    def run(self, source: str, table: str, data: Any) -> LoadMetric:
        pipeline = self.pipeline(source)
        started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
        try:
            info = pipeline.run(data, loader_file_format="parquet")
        except PipelineStepFailed as exc:
            metric = LoadMetric(
                self.run_id, source, table, 0, 0, 0, time.perf_counter() - clock, exc.load_id,
                started, dt.datetime.now(dt.UTC), "failed", _explain(exc),
            )  # fmt: skip
            self.metrics.append(metric)
            raise LoadError(f"loading {source}.{table} failed at step {exc.step}: {metric.error}") from exc
        normalize = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
        counts = normalize.row_counts if normalize else {}
        size = sum(
            job.file_size
            for package in info.load_packages
            for job in package.jobs.get("completed_jobs", [])
            if job.job_file_info.table_name in (table, REJECTS_TABLE)
        )
        metric = LoadMetric(
            self.run_id, source, table, counts.get(table, 0), counts.get(REJECTS_TABLE, 0), size,
            time.perf_counter() - clock, info.loads_ids[-1] if info.loads_ids else None,
            started, dt.datetime.now(dt.UTC), "ok",
        )  # fmt: skip
        self.metrics.append(metric)
        print(
            f"el: {source}.{table}: {metric.rows_loaded} rows, {metric.rejects} rejects, "
            f"{metric.bytes} bytes in {metric.seconds:.1f}s",
            flush=True,
        )
        return metric

    def load(self, source: str, config: SourceConfig) -> None:
        if source == "shop_db":
            try:  # sql_table reflects the table when built: an unreachable database fails here
                resources = shop_resources(config.shop_db_url, self.extracted_at, config.shop_lag_seconds)
            except Exception as exc:
                raise LoadError(f"loading shop_db failed: {_explain(exc)}") from exc
            for table, resource in zip(TABLES, resources, strict=True):
                self.run(source, table, resource)
        elif source == "events_api":
            if not config.events_url:
                raise ConfigError(NO_EVENTS_URL)
            resources = events_resource(
                config.events_url,
                self.extracted_at,
                config.events_lag_seconds,
                page_size=config.events_page_size,
                max_attempts=config.events_max_attempts,
                backoff_factor=config.events_backoff_factor,
            )
            self.run(source, "events", resources)
        else:
            if not config.files_dir.is_dir():
                raise ConfigError(f"SHOP_FILES_DIR={config.files_dir} is not a folder")
            self.run(source, "spend", spend_resource(config.files_dir.resolve().as_uri(), self.extracted_at))


def run_load(
    settings: Settings,
    sources: list[str] | None = None,
    run_id: str | None = None,
    hold_lock: bool = True,
    events_url: str | None = None,
) -> list[LoadMetric]:
    """Load the given sources (all by default); metrics are stored even when a step fails.

    `hold_lock=False` is for callers that already hold the warehouse lock (`el run`); `events_url`
    overrides SHOP_EVENTS_URL."""
    chosen = list(sources or SOURCES)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown:
        raise ConfigError(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    config = SourceConfig.from_env(settings)
    if events_url:
        config = replace(config, events_url=events_url)
    if "events_api" in chosen and not config.events_url:
        raise ConfigError(NO_EVENTS_URL)  # before anything is loaded
    loader = Loader(settings, run_id or new_run_id())
    with exclusive(settings.warehouse, f"el load {loader.run_id}") if hold_lock else nullcontext():
        check_warehouse(settings.warehouse)
        try:
            for source in chosen:
                loader.load(source, config)
        finally:
            store(settings.warehouse, loader.metrics)
    return loader.metrics
