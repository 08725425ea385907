"""Load metrics stored in the warehouse next to the data: el_meta.load_metrics."""

from __future__ import annotations

import datetime as dt
from dataclasses import astuple, dataclass

from el.warehouse import Warehouse

DDL = """
create schema if not exists el_meta;
create table if not exists el_meta.load_metrics (
    run_id varchar not null,
    pipeline_name varchar not null,
    table_name varchar not null,
    rows_loaded bigint not null,
    rejects bigint not null,
    bytes bigint not null,
    seconds double precision not null,
    load_id varchar,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    status varchar not null,
    error varchar
);
alter table el_meta.load_metrics add column if not exists path varchar;
"""


@dataclass(frozen=True)
class LoadMetric:
    run_id: str
    pipeline_name: str
    table_name: str
    rows_loaded: int
    rejects: int
    bytes: int
    seconds: float
    load_id: str | None
    started_at: dt.datetime
    finished_at: dt.datetime
    status: str
    error: str | None = None
    path: str = "dlt"  # how the rows came: "dlt" (dlt pipeline) or "duckdb_postgres" (el/sources/shop_db_direct.py)


def store(warehouse: Warehouse, metrics: list[LoadMetric]) -> None:
    if not metrics:
        return
    warehouse.executemany(
        DDL,
        "insert into el_meta.load_metrics (run_id, pipeline_name, table_name, rows_loaded, rejects, bytes, seconds, "
        "load_id, started_at, finished_at, status, error, path) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [astuple(m) for m in metrics],
    )
