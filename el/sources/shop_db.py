"""The shop's operational database (PostgreSQL in production, SQLite in the demo) via dlt sql_database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import sql_table
from sqlalchemy.types import TypeDecorator

from el.contracts import SHOP_CONTRACTS, SHOP_CURSOR, Contract, as_timestamp, decimal_type
from el.sources.guard import split

TABLES = tuple(SHOP_CONTRACTS)
CURSOR = SHOP_CURSOR
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's SQLite DATETIME stores timestamps


def backend_for(url: str) -> str:
    """connectorx for PostgreSQL (fastest measured, see docs/benchmarks.md), pyarrow for other typed
    databases, sqlalchemy rows for SQLite, whose columns can hold any type (type drift must be
    quarantined row by row, which Arrow conversion cannot)."""
    if url.startswith("sqlite"):
        return "sqlalchemy"
    return "connectorx" if url.startswith(("postgresql://", "postgres://")) else "pyarrow"


class RawValue(TypeDecorator[Any]):
    """A SQLite column read as stored: SQLAlchemy's result processing of the declared type (Numeric,
    DateTime) would raise on one drifted value ('abc' in a numeric column) and fail the whole extract
    before the contract sees the row. `declared` still gives dlt the column's type for the raw table;
    the guard checks and coerces every value against the contract."""

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, declared: sa.types.TypeEngine[Any], cursor: bool = False) -> None:
        super().__init__()
        self.declared = declared
        self.cursor = cursor

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.strftime(SQLITE_TIMESTAMP) if isinstance(value, dt.datetime) else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if self.cursor:  # the incremental cursor compares datetimes: an unreadable one is a missing one
            stamp = as_timestamp(value)
            # SQLite keeps text: one value with a UTC offset among naive ones would make dlt's cursor compare
            # an aware with a naive datetime and fail the table's every extract; it is read as naive UTC
            return stamp.astimezone(dt.UTC).replace(tzinfo=None) if stamp and stamp.tzinfo else stamp
        return value


def _kind(sql_type: sa.types.TypeEngine[Any]) -> str:
    if isinstance(sql_type, sa.Numeric) and not isinstance(sql_type, sa.Integer):
        return "decimal"
    if isinstance(sql_type, sa.Integer):
        return "int"
    if isinstance(sql_type, sa.DateTime | sa.Date):
        return "timestamp"
    return "other"


def _contract_type(type_name: str) -> sa.types.TypeEngine[Any]:
    declared = decimal_type(type_name)
    if declared:
        return sa.Numeric(*declared)
    return sa.Integer() if type_name == "int" else sa.DateTime()


def raw_columns(contract: Contract) -> Any:
    """sql_table's table adapter for SQLite: every column read raw; its dlt type is the reflected one,
    or the contract's when the source declares another kind (customer_id turned TEXT)."""

    def adapt(table: sa.Table) -> None:
        for column in table.columns:
            declared = column.type
            type_name = contract.typed.get(column.name)
            if type_name and _kind(declared) != _kind(_contract_type(type_name)):
                declared = _contract_type(type_name)
            column.type = RawValue(declared, cursor=column.name == CURSOR)

    return adapt


def declared_type(sql_type: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    """sql_table's type adapter: dlt infers raw column types from the declared type, not RawValue."""
    return sql_type.declared if isinstance(sql_type, RawValue) else sql_type


def shop_resources(
    url: str, extracted_at: dt.datetime, lag_seconds: float, tables: tuple[str, ...] = TABLES, chunk_size: int = 50_000
) -> list[list[DltResource]]:
    backend = backend_for(url)
    # a stream of Arrow batches of chunk_size rows: memory stays flat however big the table
    backend_kwargs = {"return_type": "arrow_stream"} if backend == "connectorx" else None
    resources = []
    for table in tables:
        contract = SHOP_CONTRACTS[table]
        raw = backend == "sqlalchemy"
        resource = sql_table(
            credentials=url,
            table=table,
            backend=backend,  # type: ignore[arg-type]
            chunk_size=chunk_size,
            backend_kwargs=backend_kwargs,
            incremental=dlt.sources.incremental(CURSOR, lag=lag_seconds, on_cursor_value_missing="include"),
            reflection_level="full_with_precision",
            table_adapter_callback=raw_columns(contract) if raw else None,
            type_adapter_callback=declared_type if raw else None,
        )
        resources.append(split(resource, table, contract, extracted_at, f"shop_db.{table}"))
    return resources
