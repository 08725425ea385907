"""The shop's operational database (PostgreSQL in production, SQLite in the demo) via dlt sql_database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
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
SET_ASIDE = "_el_updated_at_set_aside"  # a SQLite row's own updated_at while it goes round dlt's incremental


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

    def __init__(self, declared: sa.types.TypeEngine[Any]) -> None:
        super().__init__()
        self.declared = declared

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.strftime(SQLITE_TIMESTAMP) if isinstance(value, dt.datetime) else value


def cursor_guards() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Two steps around dlt's incremental on a SQLite row's updated_at (read as stored, `RawValue`), which
    sees every row before the contract does: `as_instant` (before it) gives the incremental the value as
    a naive UTC datetime - one with an offset among naive ones would make it compare an aware with a naive
    datetime and fail the table's every extract - or, when it is no timestamp, no value at all (dlt lets
    it through, `on_cursor_value_missing="include"`), keeping the row's own value aside; `put_back` (the
    contract check's first step) restores that, so the reject says and keeps what the source holds. A value
    with an offset that has no time in UTC (year 1 at +05:00) goes the same way (the contract: out_of_range)."""

    def as_instant(row: Any) -> Any:
        if not isinstance(row, dict) or row.get(CURSOR) is None:
            return row
        value = row[CURSOR]
        stamp = as_timestamp(value)
        if stamp is not None and stamp.tzinfo:
            try:
                stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
            except OverflowError:  # no time in UTC: the contract rejects it out_of_range
                stamp = None
        if stamp is None:
            row[SET_ASIDE] = value
        row[CURSOR] = stamp
        return row

    def put_back(row: Any) -> Any:
        if isinstance(row, dict) and SET_ASIDE in row:
            row[CURSOR] = row.pop(SET_ASIDE)
        return row

    return as_instant, put_back


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
            column.type = RawValue(declared)

    return adapt


# the form SQLAlchemy's SQLite DATETIME writes, to the second; a fraction of digits may follow
_NAIVE_SECOND = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"


def sqlite_cursor_query(query: Any, table: sa.Table, incremental: Any = None, engine: Any = None) -> Any:
    """sql_table's query adapter for SQLite: dlt filters the cursor in SQL (`updated_at >= :last_value`),
    which SQLite compares as text, and SQLite keeps whatever was written. A later instant written with an
    offset (`2026-01-09 23:00:00-10:00`, the next day in UTC) sorted before the cursor, and a number or an
    impossible date before any text, so such rows were never read: neither loaded nor quarantined. The
    SQL now leaves out only rows whose value is a real naive date-time in the form SQLAlchemy writes and
    a whole second before the cursor (lag applied): text order is time order for those, and Python reads
    them as SQLite does. Every other row is read, and dlt's incremental (on the instant `cursor_guards`
    gives it) or the contract decides, as for any row."""
    if incremental is None or incremental.last_value is None:
        return query
    start = incremental.last_value
    if isinstance(start, dt.datetime) and start.tzinfo:
        start = start.astimezone(dt.UTC).replace(tzinfo=None)
    if not isinstance(start, dt.datetime):
        return table.select()  # read every row: the incremental decides
    value = sa.type_coerce(table.c[CURSOR], sa.Text)  # as stored, with typed literals beside it
    second = sa.func.substr(value, 1, 19, type_=sa.Text)
    fraction = sa.func.substr(value, 21, type_=sa.Text)
    readable = sa.and_(
        sa.func.typeof(value) == "text",
        sa.func.instr(value, sa.func.char(0)) == 0,  # SQLite's length() and glob stop at a NUL; Python's do not
        value.bool_op("glob")(_NAIVE_SECOND),
        sa.or_(
            sa.func.length(value) == 19,
            sa.and_(sa.func.substr(value, 20, 1) == ".", fraction != "", sa.not_(fraction.bool_op("glob")("*[^0-9]*"))),
        ),
        sa.func.substr(value, 1, 4) != "0000",  # year 0: SQLite reads it, Python does not
        sa.func.datetime(second, "+0 seconds", type_=sa.Text) == second,  # a real date-time: not Feb 30, 24:00
    )
    before = sa.and_(readable, second < start.isoformat(sep=" ", timespec="seconds"))
    return table.select().where(sa.not_(sa.func.coalesce(before, sa.false())))


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
            query_adapter_callback=sqlite_cursor_query if raw else None,
        )
        prepare = None
        if raw:
            as_instant, prepare = cursor_guards()
            resource.add_map(as_instant)  # dlt keeps its incremental the last step: a mapping goes before it
        resources.append(split(resource, table, contract, extracted_at, f"shop_db.{table}", prepare=prepare))
    return resources
