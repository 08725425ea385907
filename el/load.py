"""`el load`: run the dlt pipelines into the warehouse's raw_* datasets, one table at a time."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import dlt
import duckdb
import sqlalchemy as sa
from dlt.pipeline.exceptions import PipelineStepFailed

from el.config import SOURCES, ConfigError, SourceConfig
from el.contracts import REJECTS_TABLE, SHOP_CONTRACTS, SHOP_KEYS, ReceivedBy, events_contract
from el.lock import exclusive, file_lock
from el.metrics import LoadMetric, store
from el.settings import Settings
from el.sources import shop_db_direct as direct
from el.sources.events_api import events_resource
from el.sources.file_drops import spend_resource
from el.sources.shop_db import TABLES, shop_resources
from el.warehouse import MissingTableError, Warehouse, WarehouseError

DATASETS = {
    "shop_db": "raw_shop",
    "events_api": "raw_events",
    "marketing_files": "raw_marketing",
    "stream": "raw_stream",  # `el stream` (el/stream.py), not a batch source of `el load`
}
# dlt settings of every pipeline (environment variables, e.g. LOAD__DELETE_COMPLETED_JOBS, still win):
# load files are transient - parquet without compression (cheaper to write, read once), deleted once
# their package is loaded; dlt would otherwise keep every extracted row on local disk forever.
DLT_DEFAULTS = {
    "load.delete_completed_jobs": True,
    "data_writer.compression": "none",
}
# ... except on the lake (spark), where the load files are the raw tables, kept and read many times:
# snappy, Spark's own default for parquet
LAKE_DLT_DEFAULTS = {**DLT_DEFAULTS, "data_writer.compression": "snappy"}


# parquet load files on DuckDB (cheap to write, read once); PostgreSQL takes dlt's preferred format for it;
# on the lake (spark) the load files ARE the raw tables: parquet, what Spark reads
LOADER_FILE_FORMAT: dict[str, Any] = {"duckdb": "parquet", "postgres": None, "spark": "parquet"}


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
            holder = re.search(r"\(PID (\d+)\)", str(err))
            who = f"process {holder.group(1)}" if holder else "another process"
            return f"warehouse file is locked by {who} (a running dbt or an open DuckDB session?)"
    root = chain[-1]
    return f"{type(root).__name__}: {str(root)[:300]}"


def check_warehouse(warehouse: Warehouse) -> None:
    """Fail fast and clearly when another process holds the DuckDB file or the server is unreachable."""
    try:
        warehouse.check()
    except WarehouseError as exc:
        cause = _explain(exc) if warehouse.engine == "duckdb" else str(exc)  # never "source database"
        raise LoadError(f"warehouse {warehouse.name} cannot be opened for writing: {cause}") from exc


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


def failed_packages_dir(working: Path) -> Path:
    """Where the packages set aside from the pipeline folder `working` are kept for inspection:
    `<pipelines dir>/failed_packages/<pipeline>/`. Not inside `working`: dlt wipes that folder whenever it
    opens a pipeline without local state (a new or moved warehouse, a folder claimed for another one)."""
    return working.parent / "failed_packages" / working.name


def set_aside_failed_packages(pipeline: dlt.Pipeline, why: str) -> list[str]:
    """Packages that failed (or were left) before the load step are copied to
    `failed_packages_dir(...)/<load_id>/` for inspection, then aborted: dlt restores the local state to
    before them, so the next run re-extracts their data. So are the packages of an extract a killed run
    cut short, which dlt does not list. Packages already normalized stay pending and
    are retried by the next run (dlt's default: a transient load error, e.g. a locked warehouse)."""
    working = Path(pipeline.working_dir)
    cut_short = _set_aside_cut_extracts(working)
    extracted = list(pipeline.list_extracted_load_packages())
    for load_id in extracted:
        for folder in working.glob(f"normalize/*/{load_id}"):
            shutil.copytree(folder, failed_packages_dir(working) / load_id, dirs_exist_ok=True)
    if extracted:
        pipeline.abort_packages()
    aside = [*cut_short, *extracted]
    if aside:
        print(
            f"el: {pipeline.pipeline_name}: {why}: package(s) {', '.join(aside)} moved aside to "
            f"{failed_packages_dir(working)}; their data is extracted again",
            file=sys.stderr,
            flush=True,
        )
    return aside


def load_pending(pipeline: dlt.Pipeline, who: str) -> list[str]:
    """Packages an interrupted run left normalized (e.g. killed after the files were written, before the
    state and load record were stored) are loaded first, on their own; their ids. Handed new data while
    packages are pending, dlt's `run` would only load those and skip extracting the data (it warns and
    returns), so the run would load nothing new. Their cursor state is already the pipeline's, so the
    extract that follows starts after their rows: nothing is loaded twice.

    Before that, the pipeline is synced with the warehouse, as dlt's `run` does first: a warehouse without
    the pipeline's dataset (deleted, or a new file in its place) wipes the local state, pending packages
    included, and everything is extracted again from the start. Loaded without the sync, a package would
    recreate the dataset with its own rows and cursor only, and the rows before it would never come back."""
    if not pipeline.list_normalized_load_packages():
        return []
    pipeline.sync_destination()
    pending = list(pipeline.list_normalized_load_packages())
    if pending:
        print(f"{who}: loading package(s) {', '.join(pending)} left by an interrupted run", flush=True)
        pipeline.load()
    return pending


# the folder of one extract under normalize/: dlt's `uniq_id(8)` (16 hex digits), one per extract
EXTRACT_FOLDER = re.compile(r"[0-9a-f]{16}")


def _set_aside_cut_extracts(working: Path) -> list[str]:
    """Packages of an extract that never finished (a killed run). dlt extracts into
    normalize/<random folder>/<load_id>/ and moves a package to normalize/extracted/ only when its extract
    completes, so dlt itself neither lists nor aborts them; nothing of them was committed (the pipeline's
    state is saved when an extract completes). Moved to failed_packages_dir/<load_id>/ for inspection. Callers
    hold the pipeline folder's lock (`Loader.locked_pipeline`): no other extract of this pipeline is under way."""
    normalize = working / "normalize"
    if not normalize.is_dir():
        return []
    load_ids: list[str] = []
    for folder in sorted(normalize.iterdir()):
        if not folder.is_dir() or not EXTRACT_FOLDER.fullmatch(folder.name):
            continue
        for package in sorted(path for path in folder.iterdir() if path.is_dir()):
            target = failed_packages_dir(working) / package.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # the same load id set aside before (a copy of an extracted package)
                shutil.copytree(package, target, dirs_exist_ok=True)
                shutil.rmtree(package)
            else:
                package.rename(target)  # same file system: a move, not a copy
            load_ids.append(package.name)
        shutil.rmtree(folder)
    return load_ids


OWNER_FILE = "el_warehouse"  # in a pipeline's working folder: the warehouse its local state belongs to


def warehouse_identity(warehouse: Warehouse) -> str:
    """The warehouse a pipeline folder's local state belongs to: the database (host, port, name), the lake
    or the DuckDB file, resolved so that a relative and an absolute SHOP_WAREHOUSE name the same file."""
    if warehouse.postgres:
        pg = warehouse.postgres
        return f"postgresql://{pg.host}:{pg.port}/{pg.dbname}"
    return f"lake {warehouse.lake.resolve()}" if warehouse.lake else str(warehouse.path.resolve())


def claim_pipeline_folder(working: Path, warehouse: Warehouse) -> None:
    """A pipeline folder holds the local state (cursors) of one warehouse, recorded in `el_warehouse`. When it
    is another's - two warehouses in one SHOP_WAREHOUSE folder, or this one moved or reached by another
    name - it is dropped before dlt opens it, and dlt restores this warehouse's own state from the
    warehouse (as for a lost folder): loading from another warehouse's cursors would skip every row that
    one already has. Its packages were never committed to this warehouse (state and rows commit together),
    so whatever they held is extracted again for the warehouse they belonged to. (The copies of packages
    set aside are kept outside the folder, `failed_packages_dir`.)"""
    identity = warehouse_identity(warehouse)
    owner_file = working / OWNER_FILE
    owner = owner_file.read_text().strip() if owner_file.exists() else None
    if owner == identity:
        return
    if owner is not None and working.is_dir():
        print(
            f"el: {working.name}: the local pipeline folder {working} held the state of warehouse {owner}; "
            f"dropped: the state of {identity} is restored from it",
            file=sys.stderr,
            flush=True,
        )
        for child in working.iterdir():
            if child.name == OWNER_FILE:  # goes last (rewritten below): a claim killed half-way is redone
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    working.mkdir(parents=True, exist_ok=True)
    owner_file.write_text(identity + "\n")


def _failed_table(exc: BaseException, table: str) -> str:
    """The table a failed job belongs to (a pending package of an earlier table can fail a later one)."""
    job = re.search(r"job_id=`?([A-Za-z_][A-Za-z0-9_]*)\.", str(exc))
    return job.group(1) if job else table


class Loader:
    def __init__(self, settings: Settings, run_id: str, progress: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.progress = progress or default_progress()
        self.extracted_at = dt.datetime.now(dt.UTC)
        self.metrics: list[LoadMetric] = []
        for key, value in (LAKE_DLT_DEFAULTS if settings.engine == "spark" else DLT_DEFAULTS).items():
            dlt.config[key] = value

    def pipeline(self, source: str) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=source,
            destination=self.settings.warehouse_db.destination(),
            dataset_name=DATASETS[source],
            pipelines_dir=str(self.settings.pipelines_dir),
            progress=self.progress,  # type: ignore[arg-type]
        )

    @contextmanager
    def locked_pipeline(self, source: str, what: str) -> Iterator[dlt.Pipeline]:
        """The source's dlt pipeline, its local folder locked (`<pipelines dir>/<source>.lock`) and claimed
        for this warehouse (`claim_pipeline_folder`) before dlt opens it. The warehouse lock does not cover
        the folder when two warehouses share a SHOP_WAREHOUSE folder: setting packages aside must never
        touch another process's extract under way (refused: AlreadyRunningError)."""
        working = self.settings.pipelines_dir / source
        with file_lock(working, what):
            claim_pipeline_folder(working, self.settings.warehouse_db)
            try:
                yield self.pipeline(source)
            finally:  # dlt wipes the folder when it starts a state afresh (a new or empty warehouse)
                claim_pipeline_folder(working, self.settings.warehouse_db)

    def run(self, source: str, table: str, data: Any) -> LoadMetric:
        with self.locked_pipeline(source, f"el load {source} {self.run_id}") as pipeline:
            return self._run(pipeline, source, table, data)

    def _run(self, pipeline: dlt.Pipeline, source: str, table: str, data: Any) -> LoadMetric:
        set_aside_failed_packages(pipeline, "left by an earlier run that failed before loading")
        started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
        try:
            load_pending(pipeline, f"el: {pipeline.pipeline_name}")
            info = pipeline.run(data, loader_file_format=LOADER_FILE_FORMAT[self.settings.engine])
        except PipelineStepFailed as exc:
            self.refresh_views(source, failed=True)
            failed = _failed_table(exc, table)
            cause = _explain(exc) if failed == table else f"table {failed} (package {exc.load_id}): {_explain(exc)}"
            metric = LoadMetric(
                self.run_id, source, table, 0, 0, 0, time.perf_counter() - clock, exc.load_id,
                started, dt.datetime.now(dt.UTC), "failed", cause,
            )  # fmt: skip
            self.metrics.append(metric)
            if exc.step in ("extract", "normalize"):
                set_aside_failed_packages(pipeline, f"step {exc.step} failed")
            if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C, SIGTERM (dlt's own handler included)
                raise KeyboardInterrupt(f"stopped while loading {source}.{table} (step {exc.step})") from exc
            raise LoadError(f"loading {source}.{table} failed at step {exc.step}: {metric.error}") from exc
        self.refresh_views(source)
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

    def refresh_views(self, source: str, failed: bool = False) -> None:
        """spark: the control file's raw views over the lake's folders, after every load (a failed one too:
        files it wrote are visible in raw, as the rows of a half-loaded package are on DuckDB). Stale views
        would hide the newest rows from key reconciliation: an error fails the load, unless it already failed."""
        try:
            self.settings.warehouse_db.refresh_views(DATASETS[source])
        except WarehouseError as exc:
            if not failed:
                raise LoadError(f"loading {source}: raw views of the lake not refreshed: {exc}") from exc
            print(f"el: {source}: raw views of the lake not refreshed: {exc}", file=sys.stderr, flush=True)

    def reconcile(self, url: str, table: str) -> None:
        """Hard deletes: a tombstone version (deleted_at set, `_source` '...#reconcile') is appended for
        every raw key the source no longer has, through dlt so it carries a load id."""
        key = SHOP_KEYS[table]
        try:
            keys = _source_keys(url, table, key)
        except sa.exc.SQLAlchemyError as exc:
            raise LoadError(f"key reconciliation of shop_db.{table} failed: {_explain(exc)}") from exc
        rows = vanished_rows(self.settings.warehouse_db, table, key, keys)
        if not rows:
            return
        now = dt.datetime.now(dt.UTC)
        for row in rows:
            row["deleted_at"] = row["deleted_at"] or now.replace(tzinfo=None)
            row["_extracted_at"] = now
            row["_source"] = f"shop_db.{table}#reconcile"
        self.run("shop_db", table, dlt.resource(rows, name=f"{table}__reconcile", table_name=table))

    def load_shop_direct(self, config: SourceConfig) -> set[str]:
        """The shop tables loaded by DuckDB's postgres extension (el/sources/shop_db_direct.py); the
        others, or all when that path cannot run here (said in one line), go through dlt."""
        if not (direct.is_postgres(config.shop_db_url) and direct.wanted()):
            return set()
        if self.settings.engine != "duckdb":
            why = f"the direct path writes a DuckDB warehouse; this one is {self.settings.engine}"
            print(f"el: shop_db: path dlt ({why})", file=sys.stderr, flush=True)
            return set()
        done: set[str] = set()
        try:
            with direct.connect(self.settings.warehouse, config.shop_db_url) as conn:
                for table in TABLES:
                    started = dt.datetime.now(dt.UTC)
                    try:
                        result = direct.load_table(
                            conn, table, SHOP_CONTRACTS[table], self.extracted_at, config.shop_lag_seconds
                        )
                    except direct.DirectUnavailableError as exc:
                        print(f"el: shop_db.{table}: path dlt ({exc})", file=sys.stderr, flush=True)
                        continue
                    metric = LoadMetric(
                        self.run_id, "shop_db", table, result.rows_loaded, result.rejects, 0, result.seconds,
                        result.load_id, started, dt.datetime.now(dt.UTC), "ok", path=direct.PATH_NAME,
                    )  # fmt: skip
                    self.metrics.append(metric)
                    done.add(table)
                    print(
                        f"el: shop_db.{table}: {metric.rows_loaded} rows, {metric.rejects} rejects in "
                        f"{metric.seconds:.1f}s (path {direct.PATH_NAME})",
                        flush=True,
                    )
        except direct.DirectUnavailableError as exc:
            print(f"el: shop_db: path dlt ({exc})", file=sys.stderr, flush=True)
        except duckdb.Error as exc:
            text = str(exc).replace(config.shop_db_url, "<SHOP_DB_URL>").splitlines()[0][:300]
            if "unable to connect" in text.lower():  # the attach of the source failed
                raise LoadError(f"loading shop_db failed: source database unreachable: {text}") from exc
            raise LoadError(f"loading shop_db (path {direct.PATH_NAME}) failed: {_explain(exc)}") from exc
        return done

    def load(self, source: str, config: SourceConfig) -> None:
        if source == "shop_db":
            done = self.load_shop_direct(config)
            try:  # sql_table reflects the table when built: an unreachable database fails here
                resources = shop_resources(config.shop_db_url, self.extracted_at, config.shop_lag_seconds)
            except Exception as exc:
                raise LoadError(f"loading shop_db failed: {_explain(exc)}") from exc
            for table, resource in zip(TABLES, resources, strict=True):
                if table not in done:
                    self.run(source, table, resource)
            if os.environ.get("SHOP_KEY_RECONCILIATION", "on").lower() not in ("off", "0", "false", "no"):
                for table in TABLES:
                    self.reconcile(config.shop_db_url, table)
        elif source == "events_api":
            if not config.events_url:
                raise ConfigError(NO_EVENTS_URL)
            # the latest received_at the events cursor and contract take: the API cannot have received an event
            # later than now, read as the extract goes (it may page for longer than the skew)
            received_by = ReceivedBy(dt.timedelta(minutes=config.events_max_clock_skew_minutes))
            resources = events_resource(
                config.events_url,
                self.extracted_at,
                config.events_lag_seconds,
                page_size=config.events_page_size,
                max_attempts=config.events_max_attempts,
                backoff_factor=config.events_backoff_factor,
                contract=events_contract(
                    config.events_max_lateness_days, config.events_max_clock_skew_minutes, received_by
                ),
                received_by=received_by,
                # DuckDB takes the parquet as it is; PostgreSQL's insert files and the lake's tables stay by rows
                arrow_rows=self.settings.engine == "duckdb",
            )
            self.run(source, "events", resources)
        else:
            if not config.files_dir.is_dir():
                raise ConfigError(f"SHOP_FILES_DIR={config.files_dir} is not a folder")
            self.run(source, "spend", spend_resource(config.files_dir.resolve().as_uri(), self.extracted_at))


def _source_keys(url: str, table: str, key: str) -> set[Any]:
    if url.startswith(("postgresql://", "postgres://")):  # psycopg 3 is the installed driver
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text(f"select {key} from {table}"))}
    finally:
        engine.dispose()


def vanished_rows(warehouse: Warehouse, table: str, key: str, source_keys: set[Any]) -> list[dict[str, Any]]:
    """The latest raw version of every row whose key is gone from the source and not yet marked deleted."""
    query = f"""
        select * from (
            select
                raw.*,
                row_number() over (partition by {key} order by _extracted_at desc, _dlt_load_id desc) as _version_rank
            from raw_shop.{table} as raw
        ) as ranked
        where _version_rank = 1 and deleted_at is null
    """
    try:
        rows = warehouse.fetch(query)
    except MissingTableError:
        return []  # nothing loaded yet
    for row in rows:
        for column in ("_version_rank", "_dlt_load_id", "_dlt_id"):  # dlt gives the tombstone its own ids
            row.pop(column, None)
    return [row for row in rows if row[key] not in source_keys]


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
    with exclusive(settings.warehouse_db, f"el load {loader.run_id}") if hold_lock else nullcontext():
        check_warehouse(settings.warehouse_db)
        try:
            for source in chosen:
                loader.load(source, config)
        finally:
            try:
                store(settings.warehouse_db, loader.metrics)
            except WarehouseError as exc:  # never hide the load's own error behind this one
                print(f"el: load metrics not stored: {_explain(exc)}", file=sys.stderr, flush=True)
    return loader.metrics
