"""Incremental cost curve: 1% new events a day on a large history, incremental run vs full refresh.

    .venv/bin/python -m bench.incremental_cost --events 1000000 [--events 10000000]

History: `--events` clickstream events over 100 days, generated in SQL straight into
raw_events.events (the simulator is for realism, not volume) as if loaded every morning: sessions of 6
events, users coming back about every 20 days (5% of them active on a day). The events models are built
once over all but the last 4 days, then incrementally over those (so the build bookkeeping - e.g. the
watermark the scoped unique test windows on - is what daily runs leave, not one build's). The new day -
1% of the history, of which 10% are redeliveries of old event ids and 20% events 2 to 6 weeks late - is
then served by the demo events API (in its own process, as a real API is) and loaded by the project's own
loader (the EL step; `--el-rounds` times, each from the same warehouse and pipeline state), and the same
selection is built incrementally and then with --full-refresh. dbt's per-node timings
(run_results.json) split each build into models and tests; the rest of the wall time is dbt's start-up
(parse, connection, DAG). After the incremental run, the event-id unique tests run once scoped
(unique_in_window, as the build ran them) and once whole-table, on the same tables, to time both.

Before the new day, the events pipeline loads one redelivered event of the day before: the history is
written in SQL, so without it the new day would be the pipeline's first load (no stored table schema),
which a daily load in production is not (the Arrow path of the events needs the stored schema).

The daily run after EL is what `el run` does then: `dbt build` and `dbt source freshness`, through the
same code (PipelineRun.dbt_steps, on this selection and the events source), timed both ways side by side
on the same loaded warehouse (restored from a copy before each): two dbt processes (before) and one
(el.dbt_batch, `el run` now), `--rounds` times each, alternating which goes first. Each also reports dbt's
own run time of both commands (`elapsed_time` of run_results.json and sources.json: no start-up, imports,
parse or artifact writing), the best case of a dbt kept loaded between runs. Not part of the test suite.

`--lookback-days N` passes `lookback_days` to every dbt command of the bench (history builds, daily runs, full
refresh; default: the project's, 3) to measure what staging's lookback re-read costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from el.dbt import DbtRunner
from el.load import run_load
from el.metrics import LoadMetric
from el.mode import Mode, detect
from el.pipeline import PipelineRun, RunOptions
from el.settings import Settings
from shopsim import events
from shopsim.config import SourcePaths

SELECTION = ["event_types", "stg_events__events+", "--exclude", "fct_customer_features"]
DAYS = 100
EVENTS_PER_SESSION = 6
EVENTS_PER_USER = 30  # 5 sessions in 100 days: 5% of the users are active on a given day
# day 0 of the history starts 101 days ago; day d was loaded at 01:00 on the next day
BASE = "(current_date - interval 101 day)::timestamptz"
# the history's last days are built by a second, incremental build, as daily runs would have: the scoped
# unique test of int_events__sessionized (rows by build watermark) then reads what a steady daily run reads
LAST_BUILT_DAYS = 4
HISTORY = """
with numbered as (
    select
        g,
        g // {per_day} as day,
        g // {per_session} as session,
        (g // {per_session}) % ({per_day} // {per_session}) as slot
    from range({start}, {stop}) as t(g)
)
select
    '{{"page": "/p"}}'::json as properties,
    'e' || g as event_id,
    (hash(session) % {users})::bigint as user_id,
    's' || session as session_id,
    (['page_view', 'page_view', 'click', 'add_to_cart', 'purchase', 'logout'])[1 + g % 6] as event_type,
    {base} + day * interval 1 day + (slot * 86000 // ({per_day} // {per_session})) * interval 1 second
        + (g % {per_session}) * interval 20 second as event_timestamp,
    event_timestamp + interval 5 second as received_at,
    {base} + (day + 1) * interval 1 day + interval 1 hour as _extracted_at,
    'bench' as _source,
    'load-' || day as _dlt_load_id,
    'id' || g as _dlt_id,
    null::varchar as app_version
from numbered
"""
FILL = """
create schema if not exists raw_events;
create or replace table raw_events.events as {history};
create or replace table raw_events.rejects as
select 'events_api' as source, 'events' as source_table, 'null_key' as reason_code, 'x' as reason,
       '{{}}' as record, {base} + interval 1 day as _extracted_at, 'bench' as _source,
       'load-0' as _dlt_load_id, 'r1' as _dlt_id;
"""
# the new day (day 100 = yesterday), as the events API serves it
NEW_DAY = """
select
    case when g % 10 = 0 then 'e' || (g * 7919 % {rows}) else 'n' || g end as event_id,  -- 10% redeliveries
    case when g % 5 = 1 then hash('late' || g) % {users}  -- 20% events 2 to 6 weeks late
         else hash('n' || (g // {per_session})) % {users} end as user_id,
    's-new' || (g // {per_session}) as session_id,
    'page_view' as event_type,
    strftime(
        case when g % 5 = 1 then {base} + (100 - 14 - g % 28) * interval 1 day + (g % 86000) * interval 1 second
             else {base} + interval 100 day + (g * 86000 // {new}) * interval 1 second end,
        '%Y-%m-%d %H:%M:%S.%f') as event_timestamp,
    strftime({base} + interval 100 day + (g * 86000 // {new}) * interval 1 second + interval 5 second,
             '%Y-%m-%d %H:%M:%S.%f') as received_at,
    '{{"page": "/p"}}' as properties
from range({new}) as t(g)
"""


def _write_events_store(settings: Settings, rows: list[tuple[object, ...]], served_until: str) -> None:
    """Add `rows` (event_id, user_id, session_id, event_type, event_timestamp, received_at, properties)
    to the demo events store the loader's API serves, which then serves up to `served_until`."""
    path = SourcePaths(settings.sources_root).events_db
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as store:
        store.executescript(events.SCHEMA)
        store.executemany(
            "insert into events (event_id, user_id, session_id, event_type, event_timestamp, received_at, "
            "properties) values (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        store.execute("insert or replace into meta (key, value) values ('served_until', ?)", (served_until,))


def serve_new_day(settings: Settings, rows: int, users: int) -> None:
    """Write the new day into the demo events store the loader's API serves."""
    new = rows // 100
    params = {"rows": rows, "users": users, "per_session": EVENTS_PER_SESSION, "new": new, "base": BASE}
    with duckdb.connect() as conn:
        batch = conn.execute(NEW_DAY.format(**params)).fetchall()
        served_until = conn.execute(
            f"select strftime({BASE} + interval 101 day - interval 1 second, '%Y-%m-%d %H:%M:%S.%f')"
        ).fetchone()[0]
    _write_events_store(settings, batch, served_until)


def serve_day_before(settings: Settings, rows: int) -> None:
    """One event of the day before the new day (a redelivery of a history event) in the events store."""
    per_day = rows // DAYS
    with duckdb.connect() as conn:
        (moment,) = conn.execute(f"select strftime({BASE} + interval 99 day, '%Y-%m-%d %H:%M:%S.%f')").fetchone()
    redelivery = (f"e{99 * per_day}", "1", "s-before", "page_view", moment, moment, '{"page": "/p"}')
    _write_events_store(settings, [redelivery], moment)


def el_rounds(settings: Settings, rounds: int) -> list[LoadMetric]:
    """The EL of the new day `rounds` times, each from the warehouse and pipeline state as they are now."""
    pipelines = settings.pipelines_dir
    saved = settings.warehouse.parent / "before-el"
    saved.mkdir()
    shutil.copyfile(settings.warehouse, saved / "warehouse.duckdb")
    shutil.copytree(pipelines, saved / "pipelines")
    metrics = []
    for index in range(rounds):
        if index:
            shutil.copyfile(saved / "warehouse.duckdb", settings.warehouse)
            shutil.rmtree(pipelines)
            shutil.copytree(saved / "pipelines", pipelines)
        (metric,) = run_load(settings, ["events_api"])
        metrics.append(metric)
    shutil.rmtree(saved)
    return metrics


@contextmanager
def events_api_process(settings: Settings) -> Iterator[None]:
    """The demo events API in its own process (as a real API is), SHOP_EVENTS_URL pointing at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "shopsim", "serve", "--root", str(settings.sources_root), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/events?limit=1", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ["SHOP_EVENTS_URL"] = url
        yield
    finally:
        os.environ.pop("SHOP_EVENTS_URL", None)
        server.terminate()
        server.wait()


@dataclass(frozen=True)
class BenchOptions(RunOptions):
    """`el run`'s options, plus the bench's dbt vars (`--lookback-days`)."""

    extra_vars: tuple[tuple[str, object], ...] = ()

    def dbt_vars(self) -> dict[str, object]:
        return {**super().dbt_vars(), **dict(self.extra_vars)}


class DailyRun(PipelineRun):
    """`el run`'s dbt steps on the benchmark's selection (only the events source is filled)."""

    def build_args(self) -> list[str]:
        return [*super().build_args(), "--select", *SELECTION]

    def freshness_args(self) -> list[str]:
        return [*super().freshness_args(), "--select", "source:events"]


def daily_runs(
    settings: Settings, mode: Mode, loaded: Path, rounds: int, dbt_vars: dict[str, object]
) -> dict[str, list[tuple[float, ...]]]:
    """(total, build, freshness, build run, freshness run) seconds of each way's daily run, each on the
    warehouse as `loaded` is; the last two are dbt's own run times (run_elapsed)."""
    times: dict[str, list[tuple[float, ...]]] = {"two processes": [], "one process": []}
    for index in range(rounds):
        ways = [False, True] if index % 2 == 0 else [True, False]
        for one_process in ways:
            shutil.copyfile(loaded, settings.warehouse)
            options = BenchOptions(quiet=True, extra_vars=tuple(dbt_vars.items()))
            run = DailyRun(settings, mode, f"bench-{index}-{int(one_process)}", options)
            start = time.perf_counter()
            run.dbt_steps(one_process=one_process)
            total = time.perf_counter() - start
            failed = [f"{r.step}: {r.detail}" for r in run.results if r.status != "ok"]
            if failed:
                raise SystemExit(f"daily run failed: {failed}")
            build, freshness = (r.seconds for r in run.results)
            runs = run_elapsed(settings, "run_results.json"), run_elapsed(settings, "sources.json")
            times["one process" if one_process else "two processes"].append((total, build, freshness, *runs))
    return times


def run_elapsed(settings: Settings, artifact: str) -> float:
    """dbt's own time for the command that wrote `artifact` (its `elapsed_time`: from the run's start -
    hooks, connection, adapter cache - to its end, the nodes included), i.e. without the process start-up,
    imports, parse and the writing of the artifacts: what the command would cost a dbt kept loaded."""
    return float(json.loads((settings.target_dir / artifact).read_text())["elapsed_time"])


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}/{statistics.median(values):.1f}/{max(values):.1f}s"


def print_daily(rows: int, times: dict[str, list[tuple[float, ...]]]) -> None:
    print(f"{rows:,} events - daily run after EL (dbt build + source freshness), min/median/max:", flush=True)
    for way, runs in times.items():
        total, build, freshness, build_run, freshness_run = ([run[i] for run in runs] for i in range(5))
        print(
            f"    {way:<13} total {spread(total)} (build {spread(build)}, freshness {spread(freshness)}; "
            f"dbt's own run time: build {spread(build_run)}, freshness {spread(freshness_run)})",
            flush=True,
        )


def node_split(settings: Settings, top: int = 0) -> dict[str, float]:
    results = json.loads((settings.target_dir / "run_results.json").read_text())
    split = {"models": 0.0, "tests": 0.0}
    for result in results["results"]:
        kind = "tests" if result["unique_id"].startswith(("test.", "unit_test.")) else "models"
        split[kind] += result["execution_time"]
    slowest = sorted(results["results"], key=lambda r: -r["execution_time"])[:top]
    for result in slowest:
        print(f"    {result['execution_time']:6.1f}s  {result['unique_id']}", flush=True)
    return split


def timed(
    runner: DbtRunner, args: list[str], dbt_vars: dict[str, object], top: int = 0
) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    done = runner.run(args, dbt_vars, capture=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])
    return seconds, node_split(runner.settings, top)


def unique_test_times(runner: DbtRunner, extra_vars: dict[str, object] | None = None) -> dict[str, float]:
    """Execution time of each unique_in_window test (node time: no dbt start-up), as the incremental
    run left the tables; `unique_tests_whole_table` runs them as the plain whole-table unique test."""
    done = runner.run(["test", "--select", "test_name:unique_in_window"], extra_vars, capture=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])
    results = json.loads((runner.settings.target_dir / "run_results.json").read_text())["results"]
    tests = [r for r in results if r["unique_id"].startswith("test.")]
    return {r["unique_id"].split(".")[2].split("_event_id")[0]: r["execution_time"] for r in tests}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, action="append", default=None)
    parser.add_argument("--keep", type=Path, help="build in this (empty) folder and keep it, to inspect")
    parser.add_argument("--rounds", type=int, default=3, help="daily runs of each way (default 3)")
    parser.add_argument("--el-rounds", type=int, default=1, help="EL runs of the new day (default 1)")
    parser.add_argument("--lookback-days", type=int, help="lookback_days of every dbt command")
    args = parser.parse_args()
    if args.rounds < 1 or args.el_rounds < 1:
        parser.error("--rounds and --el-rounds must be at least 1")
    if args.lookback_days is not None and args.lookback_days < 0:
        parser.error("--lookback-days must be 0 or more")
    dbt_vars: dict[str, object] = {} if args.lookback_days is None else {"lookback_days": args.lookback_days}
    root = Path(__file__).resolve().parents[1]
    for rows in args.events or [1_000_000]:
        users = rows // EVENTS_PER_USER
        with tempfile.TemporaryDirectory() as scratch:
            tmp = args.keep / str(rows) if args.keep else Path(scratch)
            tmp.mkdir(parents=True, exist_ok=True)
            # everything a run writes in the bench's folder, never the repo's
            settings = Settings.under(root, tmp)
            settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
            mode = detect(root)
            runner = DbtRunner(settings, mode)
            per_day = rows // DAYS
            history = {"per_day": per_day, "per_session": EVENTS_PER_SESSION, "users": users, "base": BASE}
            split = (DAYS - LAST_BUILT_DAYS) * per_day
            with duckdb.connect(str(settings.warehouse)) as conn:
                conn.execute(FILL.format(history=HISTORY.format(start=0, stop=split, **history), base=BASE))
            parse_start = time.perf_counter()
            runner.run(["parse"], dbt_vars, capture=True)
            parse = time.perf_counter() - parse_start
            build = ["build", "--select", *SELECTION]
            timed(runner, build, dbt_vars)  # the history but its last days, built at once
            with duckdb.connect(str(settings.warehouse)) as conn:
                conn.execute(f"insert into raw_events.events {HISTORY.format(start=split, stop=rows, **history)}")
            timed(runner, build, dbt_vars)  # its last days, built incrementally
            serve_day_before(settings, rows)
            with events_api_process(settings):
                run_load(settings, ["events_api"])  # the pipeline's earlier loads (its state and schema)
                serve_new_day(settings, rows, users)
                metrics = el_rounds(settings, args.el_rounds)
            el = [m.seconds for m in metrics]
            print(
                f"{rows:,} events - EL of the new day ({metrics[-1].rows_loaded:,} rows), min/median/max: {spread(el)}"
            )
            el_median = statistics.median(el)
            loaded = tmp / "loaded.duckdb"  # the warehouse after EL, before the daily run
            shutil.copyfile(settings.warehouse, loaded)
            daily = daily_runs(settings, mode, loaded, args.rounds, dbt_vars)
            print_daily(rows, daily)
            loaded.unlink()
            incremental = statistics.median(run[1] for run in daily["one process"])
            print(f"{rows:,} events - slowest nodes of the incremental run (the last one):")
            inc_split = node_split(settings, top=6)
            one = statistics.median(run[0] for run in daily["one process"])
            two = statistics.median(run[0] for run in daily["two processes"])
            warm = statistics.median(run[3] + run[4] for run in daily["one process"])
            scoped = unique_test_times(runner, dbt_vars)
            whole = unique_test_times(runner, {**dbt_vars, "unique_tests_whole_table": True})
            for name, seconds in scoped.items():
                print(f"    {name}: scoped {seconds:.2f}s, whole table {whole[name]:.2f}s", flush=True)
            print(f"{rows:,} events - slowest nodes of the full refresh:")
            full, full_split = timed(runner, [*build, "--full-refresh"], dbt_vars, top=6)
            full_run = run_elapsed(settings, "run_results.json")
            print(
                f"{rows:>11,} events, 1% new: EL {el_median:.1f}s (median; {metrics[-1].rows_loaded:,} rows) | "
                f"incremental build {incremental:.1f}s (median, one process; models {inc_split['models']:.1f}s, "
                f"tests {inc_split['tests']:.1f}s) | full refresh {full:.1f}s (models {full_split['models']:.1f}s, "
                f"tests {full_split['tests']:.1f}s) | build ratio {incremental / full:.2f} | "
                f"with EL {(el_median + incremental) / (el_median + full):.2f} | "
                f"daily run (build + freshness, median) {two:.1f}s two processes, {one:.1f}s one | "
                f"EL + daily run / full refresh {(el_median + two) / full:.2f} two processes, "
                f"{(el_median + one) / full:.2f} one | dbt's own run time of build + freshness {warm:.1f}s "
                f"(median), EL + that / full refresh {(el_median + warm) / full:.2f}, / the full refresh's own run "
                f"time ({full_run:.1f}s) {(el_median + warm) / full_run:.2f} (a dbt kept loaded: bounds) | "
                f"dbt parse {parse:.1f}s | vars {dbt_vars or 'project defaults'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
