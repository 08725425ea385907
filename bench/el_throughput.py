"""EL throughput from PostgreSQL to DuckDB: the project's loader vs the bulk limit vs dlt's default.

    .venv/bin/python -m bench.el_throughput --rows 1000000 [--rows 5000000] [--methods project,...]

For each size it fills an `order_items` table in a scratch database on the loopback PostgreSQL, then
times, each in its own process (peak RSS measured per process):
  copy_limit  COPY (select ...) TO STDOUT (csv) piped into DuckDB read_csv: the bulk-copy ceiling
  project     el's shop_db loader (dlt sql_table, connectorx Arrow stream, contract guard, rejects fork)
  dlt_default dlt sql_table with its default backend (sqlalchemy) and default load files (INSERT VALUES)
  sqlalchemy_parquet  the same backend with parquet load files, as the project loads
and prints rows/s, the ratio to the COPY limit and peak memory. Not part of the test suite; results
go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from shopsim.pg import scratch_database

FILL = """
create table order_items as
select g as order_item_id, g / 3 as order_id, g % 500 as product_id, 1 + g % 3 as quantity,
       ((g % 10000) / 100.0)::numeric(12, 2) as unit_price,
       timestamp '2026-01-01' + g * interval '1 second' as created_at,
       timestamp '2026-01-01' + g * interval '1 second' as updated_at,
       null::timestamp as deleted_at
from generate_series(1, {rows}) as g
"""


def copy_limit(url: str, workdir: Path) -> int:
    import duckdb

    csv_path = workdir / "order_items.csv"
    query = "copy (select * from order_items) to stdout with (format csv, header true)"
    with psycopg.connect(url) as conn, conn.cursor() as cur, csv_path.open("wb") as handle, cur.copy(query) as copy:
        for chunk in copy:
            handle.write(chunk)
    with duckdb.connect(str(workdir / "w.duckdb")) as conn:
        conn.execute(f"create table order_items as select * from read_csv('{csv_path}')")
        return conn.execute("select count(*) from order_items").fetchone()[0]


def project_loader(url: str, workdir: Path) -> int:
    from el.load import Loader
    from el.settings import Settings
    from el.sources.shop_db import shop_resources

    settings = Settings.under(Path(__file__).resolve().parents[1], workdir)
    loader = Loader(settings, "bench", progress="log")
    (resource_,) = shop_resources(url, dt.datetime.now(dt.UTC), 0, tables=("order_items",))
    return loader.run("shop_db", "order_items", resource_).rows_loaded


def dlt_default(url: str, workdir: Path, file_format: str | None = None) -> int:
    import dlt
    from dlt.sources.sql_database import sql_table

    pipeline = dlt.pipeline(
        "bench_default",
        destination=dlt.destinations.duckdb(str(workdir / "w.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(workdir),
    )
    pipeline.run(sql_table(credentials=url, table="order_items"), loader_file_format=file_format)  # type: ignore[arg-type]
    return pipeline.last_trace.last_normalize_info.row_counts["order_items"]


def sqlalchemy_parquet(url: str, workdir: Path) -> int:
    return dlt_default(url, workdir, "parquet")


METHODS = {
    "copy_limit": copy_limit,
    "project": project_loader,
    "dlt_default": dlt_default,
    "sqlalchemy_parquet": sqlalchemy_parquet,
}


def child(method: str, url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows = METHODS[method](url, Path(tmp))
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "rows": rows, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", default=None)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    for rows in args.rows or [1_000_000]:
        with scratch_database(prefix="bench") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(FILL.format(rows=rows))
                conn.execute("analyze order_items")
            results = {}
            for method in ["copy_limit", *(m for m in args.methods.split(",") if m != "copy_limit")]:
                done = subprocess.run(
                    [sys.executable, "-m", "bench.el_throughput", "--child", method, url],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[method] = json.loads(done.stdout.strip().splitlines()[-1])
            limit = rows / results["copy_limit"]["seconds"]
            for method, result in results.items():
                rate = result["rows"] / result["seconds"]
                print(
                    f"{rows:>9,} rows  {method:18s} {rate:>12,.0f} rows/s  {rate / limit:5.2f}x limit  "
                    f"{result['seconds']:7.1f}s  peak {result['peak_mb']:,.0f} MB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
