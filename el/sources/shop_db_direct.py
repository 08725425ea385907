"""The shop DB load straight from PostgreSQL into a DuckDB warehouse, with DuckDB's postgres extension.

DuckDB reads the incremental slice itself (an attached, read-only PostgreSQL database: the cursor
predicate is pushed down, the scan runs on parallel connections), with no Python rows, no Arrow
batches and no load files. Per table, ONE DuckDB transaction writes the fit rows to raw (with the
lineage columns `_extracted_at`, `_source` and `_dlt_load_id`, as the dlt path writes them), the
rejects with their reasons, and a `_dlt_loads` row for the load id. The cursor is not kept anywhere
else: it is the newest `updated_at` the warehouse holds for the table (raw and rejects), so it is
committed with the data by construction, and a kill -9 leaves either the whole table load or none of it.

The contract is checked as SQL (the guard's `candidate_mask` in SQL: required columns, decimals that
exceed the declared precision, negative amounts, accepted values); the few candidate rows get their
reason from the same `Contract.violation` and `Contract.reject` code as the dlt path, so the reasons are
the same text. A source column whose type does not fit the contract (the source changed it) sends the
table to the dlt path, which checks it row by row.

Used when the warehouse is DuckDB, the source is PostgreSQL and the extension can be loaded from its
file (the `duckdb-extension-postgres` package, or SHOP_DUCKDB_POSTGRES_EXTENSION=<file>); never
downloaded. SHOP_EL_DIRECT=off forces the dlt path.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from el.contracts import REJECTS_TABLE, SHOP_CURSOR, Contract, decimal_type

DIRECT_ENV = "SHOP_EL_DIRECT"  # "auto" (default): direct when possible; "off": always the dlt path
EXTENSION_ENV = "SHOP_DUCKDB_POSTGRES_EXTENSION"  # the extension file, instead of the packaged one
PATH_NAME = "duckdb_postgres"  # the `path` of its load metrics (the dlt path's is "dlt")
SCHEMA = "raw_shop"
SOURCE_ALIAS = "shop_source"
CURSOR = SHOP_CURSOR

INTEGER_TYPES = {"smallint", "integer", "bigint"}
SMALL_INTEGER_TYPES = {"smallint", "integer"}  # |value| < 2^31 < 10^10: fits numeric(12,2)
Column = tuple[str, str, int | None, int | None, bool]  # name, PostgreSQL type, precision, scale, nullable
TIMESTAMP_TYPES = {"timestamp without time zone"}

REJECTS_DDL = f"""
create table if not exists {SCHEMA}.{REJECTS_TABLE} (
    source varchar not null, source_table varchar not null, reason_code varchar not null,
    reason varchar not null, record varchar not null, _extracted_at timestamptz not null,
    _source varchar not null, _dlt_load_id varchar not null, _dlt_id varchar not null
)
"""
LOADS_DDL = f"""
create table if not exists {SCHEMA}._dlt_loads (
    load_id varchar not null, schema_name varchar, status bigint not null,
    inserted_at timestamptz not null, schema_version_hash varchar
)
"""


class DirectUnavailableError(RuntimeError):
    """The direct path cannot run here; the message says why (the dlt path is taken instead)."""


@dataclass(frozen=True)
class DirectResult:
    table: str
    rows_loaded: int
    rejects: int
    load_id: str
    seconds: float
    phases: dict[str, float]  # seconds per step (source columns, cursor, insert, rejects, commit)


def wanted() -> bool:
    return os.environ.get(DIRECT_ENV, "auto").strip().lower() not in ("off", "0", "false", "no")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def extension_file() -> Path:
    """The postgres extension file for the installed duckdb, or DirectUnavailableError saying why not."""
    override = os.environ.get(EXTENSION_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise DirectUnavailableError(f"{EXTENSION_ENV}={override} is not a file")
        return path
    try:
        import duckdb_extension_postgres  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DirectUnavailableError(
            f"package duckdb-extension-postgres is not installed (duckdb {duckdb.__version__})"
        ) from exc
    folder = Path(duckdb_extension_postgres.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = folder / "postgres.duckdb_extension"
    if not path.is_file():
        raise DirectUnavailableError(f"duckdb-extension-postgres has no extension for duckdb {duckdb.__version__}")
    return path


def _loadable(path: Path) -> Path:
    """DuckDB derives the entry point from the file name (postgres_scanner_...): the packaged file is
    named postgres.duckdb_extension, so it is linked under the expected name in a cache folder."""
    if path.name == "postgres_scanner.duckdb_extension":
        return path
    folder = Path(tempfile.gettempdir()) / f"shop-elt-duckdb-{duckdb.__version__}-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "postgres_scanner.duckdb_extension"
    if not (link.is_symlink() and link.resolve() == path.resolve()):
        tmp = folder / f".{os.getpid()}.link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path.resolve())
        tmp.replace(link)
    return link


def load_extension(conn: duckdb.DuckDBPyConnection) -> None:
    """Loads the postgres extension from its file, else one already installed in DuckDB's extension
    folder (e.g. by `INSTALL postgres` on a machine with internet); never from the network."""
    conn.execute("set autoinstall_known_extensions = false")
    conn.execute("set autoload_known_extensions = false")
    try:
        path = extension_file()
    except DirectUnavailableError as missing:
        if os.environ.get(EXTENSION_ENV):
            raise
        try:
            conn.execute("load postgres_scanner")
            return
        except duckdb.Error:
            raise missing from None
    try:
        conn.execute(f"load '{_loadable(path)}'")
    except duckdb.Error as exc:
        raise DirectUnavailableError(f"the postgres extension {path} cannot be loaded: {str(exc)[:200]}") from exc


@contextmanager
def connect(warehouse: Path, url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse, with the source attached read-only as `shop_source`."""
    conn = duckdb.connect(str(warehouse))
    try:
        load_extension(conn)
        conn.execute(f"attach '{_quote(url)}' as {SOURCE_ALIAS} (type postgres, read_only)")
        yield conn
    finally:
        conn.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _literal(value: Any) -> str:
    return "null" if value is None else f"'{_quote(str(value))}'"


def source_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[Column]:
    """(name, PostgreSQL type, numeric precision, scale, nullable) of the source table, in column order."""
    query = (
        "select column_name, data_type, numeric_precision, numeric_scale, is_nullable = ''YES'' "
        "from information_schema.columns "
        f"where table_name = ''{table}'' and table_schema = current_schema() order by ordinal_position"
    )
    return conn.execute(f"select * from postgres_query('{SOURCE_ALIAS}', '{query}')").fetchall()


def unfit_columns(contract: Contract, columns: list[Column]) -> list[str]:
    """Typed contract columns whose source type is not of the declared kind (they go the dlt way)."""
    unfit = []
    for name, pg_type, precision, scale, _nullable in columns:
        type_name = contract.typed.get(name)
        if type_name is None:
            continue
        declared = decimal_type(type_name)
        if type_name == "int":
            fits = pg_type in INTEGER_TYPES
        elif type_name == "timestamp":
            fits = pg_type in TIMESTAMP_TYPES
        elif declared:
            fits = pg_type in SMALL_INTEGER_TYPES or (
                pg_type == "numeric"
                and precision is not None
                and scale is not None
                and scale <= declared[1]
                and precision - scale <= declared[0] - declared[1]
            )
        else:
            fits = pg_type in ("text", "character varying")
        if not fits:
            unfit.append(f"{name} {pg_type}")
    return unfit


def _select_list(contract: Contract, columns: list[Column]) -> str:
    """Source columns cast to the raw types the dlt path creates (integers bigint, decimals as declared)."""
    parts = []
    for name, pg_type, *_ in columns:
        type_name = contract.typed.get(name)
        declared = decimal_type(type_name) if type_name else None
        if declared:
            parts.append(f'cast(s."{name}" as decimal({declared[0]}, {declared[1]})) as "{name}"')
        elif type_name == "int" or pg_type in INTEGER_TYPES:
            parts.append(f's."{name}"::bigint as "{name}"')
        elif type_name == "timestamp":
            parts.append(f's."{name}"::timestamp as "{name}"')
        else:
            parts.append(f's."{name}"')
    return ", ".join(parts)


def candidate_sql(contract: Contract, columns: list[Column]) -> str:
    """The guard's candidate mask as a SQL predicate over raw (rows that may break the contract). The
    source's declared types fit the contract (`unfit_columns` is empty), so decimals cannot exceed their
    precision and columns the source declares NOT NULL cannot be null: only the other rules are checked."""
    names = {name for name, *_ in columns}
    nullable = {name for name, *_, can_be_null in columns if can_be_null}
    terms = [f'"{column}" is null' for column in contract.required if column in nullable]
    terms += [f'coalesce("{column}" < 0, false)' for column in contract.non_negative if column in names]
    for column, allowed in contract.accepted.items():
        if column in names:
            values = ", ".join(_literal(value) for value in sorted(allowed))
            terms.append(f'coalesce("{column}" not in ({values}), true)')
    missing = [column for column in contract.required if column not in names]
    if missing:  # a required column the source dropped: every row breaks the contract
        return "true"
    return " or ".join(terms) or "false"


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    query = "select count(*) from information_schema.tables where table_catalog = current_database() "
    query += "and table_schema = ? and table_name = ?"
    return conn.execute(query, [SCHEMA, table]).fetchone()[0] > 0  # type: ignore[index]


def warehouse_cursor(conn: duckdb.DuckDBPyConnection, table: str, has_raw: bool) -> dt.datetime | None:
    """The newest cursor value the warehouse holds for `table` (raw rows and rejected rows): the state."""
    values = []
    if has_raw:
        values.append(conn.execute(f'select max("{CURSOR}") from {SCHEMA}."{table}"').fetchone()[0])  # type: ignore[index]
    if _exists(conn, REJECTS_TABLE):
        rejected = (
            f"select max(try_cast(json_extract_string(record, '$.{CURSOR}') as timestamp)) "
            f"from {SCHEMA}.{REJECTS_TABLE} where source = 'shop_db' and source_table = ?"
        )
        values.append(conn.execute(rejected, [table]).fetchone()[0])  # type: ignore[index]
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _ensure_columns(conn: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
    """A column the source gained is added to raw (null in earlier rows), as dlt's schema evolution does."""
    existing = {row[0] for row in conn.execute(f'describe {SCHEMA}."{table}"').fetchall()}
    probe = f'describe select {select} from {SOURCE_ALIAS}."{table}" as s limit 0'
    for name, column_type, *_ in conn.execute(probe).fetchall():
        if name not in existing:
            conn.execute(f'alter table {SCHEMA}."{table}" add column "{name}" {column_type}')


def new_load_id() -> str:
    """A load id shaped like dlt's (the epoch time as text), unique per table load."""
    return f"{time.time():.6f}{secrets.randbelow(10)}"


def load_table(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    extracted_at: dt.datetime,
    lag_seconds: float,
) -> DirectResult:
    """One table's incremental slice, checked, into raw + rejects + _dlt_loads in one transaction."""
    clock = time.perf_counter()
    phases: dict[str, float] = {}
    last = clock

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[name], last = now - last, now

    columns = source_columns(conn, table)
    if not columns:
        raise DirectUnavailableError(f"source table {table} not found")
    unfit = unfit_columns(contract, columns)
    if unfit:
        raise DirectUnavailableError(f"{table}: source column type(s) differ from the contract: {', '.join(unfit)}")
    select = _select_list(contract, columns)
    origin = f"shop_db.{table}"
    load_id = new_load_id()
    lineage = f"cast({_literal(extracted_at.isoformat())} as timestamptz) as _extracted_at, "
    lineage += f"{_literal(origin)} as _source, {_literal(load_id)} as _dlt_load_id"
    lap("source_columns")
    conn.execute("begin transaction")
    try:
        conn.execute(f"create schema if not exists {SCHEMA}")
        has_raw = _exists(conn, table)
        cursor = warehouse_cursor(conn, table, has_raw)
        lap("cursor")
        source = f'{SOURCE_ALIAS}."{table}" as s'  # the whole table: a parallel scan
        where = ""
        if cursor is not None:
            start = cursor - dt.timedelta(seconds=lag_seconds)
            key = contract.key[0]
            # the slice, filtered by PostgreSQL itself (an index on the cursor serves it): rows at or after
            # the cursor minus the lag, and rows without a cursor value
            names = ", ".join(f'"{name}"' for name, *_ in columns)
            sliced = f'select {names} from "{table}" where "{CURSOR}" >= {_literal(start)} or "{CURSOR}" is null'
            source = f"postgres_query('{SOURCE_ALIAS}', {_literal(sliced)}) as s"
            # versions raw already holds (same key and cursor value) are not appended again
            where = (
                f'where not exists (select 1 from {SCHEMA}."{table}" as r where r."{CURSOR}" >= {_literal(start)} '
                f'and r."{key}" = s."{key}" and r."{CURSOR}" = s."{CURSOR}")'
            )
        if not has_raw:
            conn.execute(f'create table {SCHEMA}."{table}" as select {select}, {lineage} from {source} limit 0')
        else:
            _ensure_columns(conn, table, select)
        inserted = conn.execute(
            f'insert into {SCHEMA}."{table}" by name select {select}, {lineage} from {source} {where}'
        ).fetchone()[0]  # type: ignore[index]
        lap("insert")
        mask = candidate_sql(contract, columns)
        mine = f"_dlt_load_id = {_literal(load_id)}"
        candidates, rejects = _rejects(
            conn, table, contract, columns, mask, mine, extracted_at, origin, load_id, cursor, lag_seconds
        )
        if candidates:
            conn.execute(f'delete from {SCHEMA}."{table}" where {mine} and ({mask})')
        loaded = inserted - candidates
        lap("rejects")
        conn.execute(LOADS_DDL)
        conn.execute(
            f"insert into {SCHEMA}._dlt_loads values (?, 'shop_db', 0, ?, ?)",
            [load_id, dt.datetime.now(dt.UTC), PATH_NAME],
        )
        conn.execute("commit")
        lap("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return DirectResult(table, loaded, len(rejects), load_id, time.perf_counter() - clock, phases)


def _rejects(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    contract: Contract,
    columns: list[Column],
    mask: str,
    mine: str,
    extracted_at: dt.datetime,
    origin: str,
    load_id: str,
    cursor: dt.datetime | None,
    lag_seconds: float,
) -> tuple[int, list[dict[str, Any]]]:
    """(candidate rows, their reject records) of this load (reasons by the guard's own code), written to
    rejects; a rejected version already recorded (same record) is not recorded again."""
    names = [name for name, *_ in columns]
    # decimals as the dlt path's reader delivers them (decimal(38,10)), so the record text is the same
    shown = []
    for name in names:
        declared = decimal_type(contract.typed.get(name, ""))
        shown.append(f'cast("{name}" as decimal(38, 10)) as "{name}"' if declared else f'"{name}"')
    candidates = []
    if mask != "false":  # no rule can fail on this source (e.g. no nullable required column): no scan
        query = f'select {", ".join(shown)} from {SCHEMA}."{table}" where {mine} and ({mask})'
        cursor_result = conn.execute(query)
        fields = [d[0] for d in cursor_result.description]
        candidates = [dict(zip(fields, row, strict=True)) for row in cursor_result.fetchall()]
    records = []
    for row in candidates:
        reason = contract.violation(row)
        if reason is None:  # the SQL mask and the row rules disagree: let the dlt path check row by row
            raise DirectUnavailableError(f"{table}: a row the SQL checks flag keeps the contract: {row}")
        records.append(contract.reject(row, reason, extracted_at, origin))
    conn.execute(f"create schema if not exists {SCHEMA}")
    conn.execute(REJECTS_DDL)
    if records and cursor is not None:
        start = cursor - dt.timedelta(seconds=lag_seconds)
        known_query = (
            f"select record from {SCHEMA}.{REJECTS_TABLE} where source = 'shop_db' and source_table = ? and "
            f"coalesce(try_cast(json_extract_string(record, '$.{CURSOR}') as timestamp) >= ?, true)"
        )
        known = {row[0] for row in conn.execute(known_query, [table, start]).fetchall()}
        records = [record for record in records if record["record"] not in known]
    if records:
        conn.executemany(
            f"insert into {SCHEMA}.{REJECTS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [r["source"], r["source_table"], r["reason_code"], r["reason"], r["record"], r["_extracted_at"],
                 r["_source"], load_id, secrets.token_urlsafe(10)]
                for r in records
            ],
        )  # fmt: skip
    return len(candidates), records
