"""The shop's operational database (PostgreSQL in production, SQLite in the demo) via dlt sql_database."""

from __future__ import annotations

import datetime as dt

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import sql_table

from el.contracts import SHOP_CONTRACTS
from el.sources.guard import split

TABLES = tuple(SHOP_CONTRACTS)


def backend_for(url: str) -> str:
    """connectorx for PostgreSQL (fastest measured, see docs/benchmarks.md), pyarrow for other typed
    databases, sqlalchemy rows for SQLite, whose columns can hold any type (type drift must be
    quarantined row by row, which Arrow conversion cannot)."""
    if url.startswith("sqlite"):
        return "sqlalchemy"
    return "connectorx" if url.startswith(("postgresql://", "postgres://")) else "pyarrow"


def shop_resources(
    url: str, extracted_at: dt.datetime, lag_seconds: float, tables: tuple[str, ...] = TABLES, chunk_size: int = 50_000
) -> list[list[DltResource]]:
    backend = backend_for(url)
    # a stream of Arrow batches of chunk_size rows: memory stays flat however big the table
    backend_kwargs = {"return_type": "arrow_stream"} if backend == "connectorx" else None
    resources = []
    for table in tables:
        contract = SHOP_CONTRACTS[table]
        resource = sql_table(
            credentials=url,
            table=table,
            backend=backend,  # type: ignore[arg-type]
            chunk_size=chunk_size,
            backend_kwargs=backend_kwargs,
            incremental=dlt.sources.incremental("updated_at", lag=lag_seconds, on_cursor_value_missing="include"),
            reflection_level="full_with_precision",
        )
        resources.append(split(resource, table, contract, extracted_at, f"shop_db.{table}"))
    return resources
