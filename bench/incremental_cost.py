"""Incremental cost curve: 1% new events a day on a large history, incremental run vs full refresh.

    .venv/bin/python -m bench.incremental_cost --events 1000000 [--events 10000000]

Fills raw_events.events of a scratch DuckDB warehouse with synthetic clickstream (SQL, no simulator:
the simulator is for realism, not volume), builds the events models once in full, appends 1% new
deliveries (some late, some duplicates) under a new _extracted_at, then times an incremental build and
a --full-refresh build of the same selection. dbt's own per-node timings (run_results.json) split the
time into model runs and tests; parse time is measured with `dbt parse`. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from el.dbt import DbtRunner
from el.mode import detect
from el.settings import Settings

SELECTION = ["event_types", "stg_events__events+", "--exclude", "fct_customer_features"]
FILL = """
create schema if not exists raw_events;
create or replace table raw_events.events as
select
    'e' || g as event_id,
    (g % 50000)::bigint as user_id,
    's' || (g // 6) as session_id,
    (['page_view', 'page_view', 'click', 'add_to_cart', 'purchase', 'logout'])[1 + g % 6] as event_type,
    timestamptz '2026-01-01 00:00:00+00' + (g * 2) * interval '1 second' as event_timestamp,
    timestamptz '2026-01-01 00:00:05+00' + (g * 2) * interval '1 second' as received_at,
    '{{"page": "/p"}}'::json as properties,
    null::varchar as app_version,
    -- the history was loaded long before the new day, outside the staging lookback window
    timestamptz '2026-01-01 00:00:00+00' + (g % 59) * interval '1 day' as _extracted_at,
    'bench' as _source,
    'load-1' as _dlt_load_id,
    'id' || g as _dlt_id
from range({rows}) as t(g);
create or replace table raw_events.rejects as
select 'events_api' as source, 'events' as source_table, 'null_key' as reason_code, 'x' as reason,
       '{{}}' as record, timestamptz '2026-03-01 00:00:00+00' as _extracted_at, 'bench' as _source,
       'load-1' as _dlt_load_id, 'r1' as _dlt_id;
"""
APPEND = """
insert into raw_events.events
select
    case when g % 10 = 0 then 'e' || (g * 7 % {rows}) else 'n' || g end as event_id,  -- 10% redeliveries
    (g % 50000)::bigint, 's-new' || (g // 6), 'page_view',
    case when g % 5 = 0 then timestamptz '2026-01-02 00:00:00+00' + g * interval '1 second'  -- 20% very late
         else timestamptz '2026-03-01 00:00:00+00' + g * interval '1 second' end,
    timestamptz '2026-03-02 00:00:00+00' + g * interval '1 second',
    '{{"page": "/p"}}'::json, '3.0', timestamptz '2026-03-02 12:00:00+00', 'bench', 'load-2', 'n' || g
from range({new}) as t(g);
"""


def timed(runner: DbtRunner, args: list[str], top: int = 0) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    done = runner.run(args, capture=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])
    results = json.loads((runner.settings.project_root / "target" / "run_results.json").read_text())
    split = {"models": 0.0, "tests": 0.0}
    for result in results["results"]:
        kind = "tests" if result["unique_id"].startswith(("test.", "unit_test.")) else "models"
        split[kind] += result["execution_time"]
    slowest = sorted(results["results"], key=lambda r: -r["execution_time"])[:top]
    for result in slowest:
        print(f"    {result['execution_time']:6.1f}s  {result['unique_id']}", flush=True)
    return seconds, split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, action="append", default=None)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    for rows in args.events or [1_000_000]:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(root, Path(tmp) / "warehouse.duckdb", Path(tmp) / "src")
            runner = DbtRunner(settings, detect(root))
            with duckdb.connect(str(settings.warehouse)) as conn:
                conn.execute(FILL.format(rows=rows))
            parse_start = time.perf_counter()
            runner.run(["parse"], capture=True)
            parse = time.perf_counter() - parse_start
            build = ["build", "--select", *SELECTION]
            timed(runner, build)  # the history, built once
            with duckdb.connect(str(settings.warehouse)) as conn:
                conn.execute(APPEND.format(rows=rows, new=rows // 100))
            print(f"{rows:,} events - slowest nodes of the incremental run:")
            incremental, inc_split = timed(runner, build, top=5)
            print(f"{rows:,} events - slowest nodes of the full refresh:")
            full, full_split = timed(runner, [*build, "--full-refresh"], top=5)
            print(
                f"{rows:>11,} events, 1% new: incremental {incremental:6.1f}s "
                f"(models {inc_split['models']:.1f}s, tests {inc_split['tests']:.1f}s) | full refresh {full:6.1f}s "
                f"(models {full_split['models']:.1f}s, tests {full_split['tests']:.1f}s) | "
                f"ratio {incremental / full:.2f} | dbt parse {parse:.1f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
