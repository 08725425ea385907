"""Compare dlt sql_database backends from PostgreSQL into DuckDB (rows/s).

    .venv/bin/python -m bench.el_backends --rows 300000

Creates a scratch database on the loopback PostgreSQL with an order_items-like table, then loads it
with each backend into a fresh DuckDB file and prints rows/s. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dlt
import psycopg
from dlt.sources.sql_database import sql_table

from shopsim.pg import scratch_database


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--backends", default="sqlalchemy,pyarrow,connectorx")
    args = parser.parse_args()
    with scratch_database(prefix="bench") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "create table order_items as select g as order_item_id, g / 3 as order_id, g % 500 as product_id, "
                "1 + g % 3 as quantity, (g % 10000) / 100.0::numeric(12, 2) as unit_price, "
                "now() - g * interval '1 second' as created_at, now() - g * interval '1 second' as updated_at "
                f"from generate_series(1, {args.rows}) as g"
            )
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                pipeline = dlt.pipeline(
                    f"bench_{backend}",
                    destination=dlt.destinations.duckdb(str(Path(tmp) / "w.duckdb")),
                    dataset_name="raw",
                    pipelines_dir=tmp,
                )
                kwargs = {"return_type": "arrow"} if backend == "connectorx" else {}
                resource = sql_table(credentials=url, table="order_items", backend=backend, backend_kwargs=kwargs)
                start = time.perf_counter()
                pipeline.run(resource)
                seconds = time.perf_counter() - start
                print(f"{backend:12s} {args.rows / seconds:12,.0f} rows/s ({seconds:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
