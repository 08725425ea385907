"""The warehouse el/ loads into and records its runs in: a DuckDB file, a PostgreSQL database or a lake.

Which one follows the dbt target (DBT_TARGET, default `dev`): the `type` of that output in profiles.yml.
A PostgreSQL warehouse is reached with the same SHOP_PG_* variables the profile reads, so dlt and dbt
always write to the same database. Each setting comes from its SHOP_PG_* variable, else from dlt's
`[destination.postgres.credentials]` in the git-ignored `.dlt/secrets.toml` (host, port, username,
password, database), else the default; never from the repository. el/ hands the resolved values to every
dbt process it starts, so the profile sees the same connection.

A `spark` target has no database el/ could write to: raw lands as parquet files written by dlt's
filesystem destination in the lake (SHOP_LAKE, default data/lake), `<lake>/<dataset>/<table>/*.parquet`,
append-only, which Spark reads. What el/ records about its runs (el_meta) goes to a small DuckDB
*control* file in the lake, `<lake>/_control.duckdb`, which also holds a view per raw table over its
parquet files (raw_shop.orders etc., re-created after every load), so every SQL read of raw in el/
(key reconciliation, checks, tests) works unchanged on the lake.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from el.secrets import secret as read_secret

DEFAULT_TARGET = "dev"
ENGINES = ("duckdb", "postgres", "spark")
LAKE_ENV = "SHOP_LAKE"
CONTROL_FILE = "_control.duckdb"  # in the lake root
# dlt's default layout, spelled out: it is the interface with the dbt sources that Spark reads
LAKE_LAYOUT = "{table_name}/{load_id}.{file_id}.{ext}"


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened (a locked DuckDB file, an unreachable server)."""


class MissingTableError(WarehouseError):
    """The queried table does not exist (yet)."""


@dataclass(frozen=True)
class PgConnection:
    """A PostgreSQL warehouse: the SHOP_PG_* variables of profiles.yml's `postgres` output."""

    host: str = "localhost"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "analytics"

    @classmethod
    def from_env(cls) -> PgConnection:
        """SHOP_PG_<NAME> from the environment, else dlt's secrets (`.dlt/secrets.toml`), else the default."""

        def setting(variable: str, secret: str, default: str) -> str:
            value = os.environ.get(variable)
            if value is not None:
                return value
            found = read_secret(f"destination.postgres.credentials.{secret}", WarehouseError)
            return default if found is None else found

        port = setting("SHOP_PG_PORT", "port", str(cls.port))
        if not port.isdigit():
            raise WarehouseError(f"the PostgreSQL port {port!r} (SHOP_PG_PORT or secrets.toml) is not a number")
        return cls(
            host=setting("SHOP_PG_HOST", "host", cls.host),
            port=int(port),
            user=setting("SHOP_PG_USER", "username", cls.user),
            password=setting("SHOP_PG_PASSWORD", "password", cls.password),
            dbname=setting("SHOP_PG_DBNAME", "database", cls.dbname),
        )

    def as_env(self) -> dict[str, str]:
        return {
            "SHOP_PG_HOST": self.host,
            "SHOP_PG_PORT": str(self.port),
            "SHOP_PG_USER": self.user,
            "SHOP_PG_PASSWORD": self.password,
            "SHOP_PG_DBNAME": self.dbname,
        }

    def url(self) -> str:
        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    def display(self) -> str:
        """Where, without the password (for messages)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def target_engine(project_root: Path, target: str) -> str:
    """The `type` of dbt output `target` of profile `shop` in profiles.yml (duckdb, postgres or spark)."""
    profiles = yaml.safe_load((project_root / "profiles.yml").read_text(encoding="utf-8")) or {}
    outputs = (profiles.get("shop") or {}).get("outputs") or {}
    if target not in outputs:
        raise WarehouseError(f"DBT_TARGET={target} is not an output of profiles.yml; choose from {', '.join(outputs)}")
    engine = str(outputs[target].get("type", ""))
    if engine not in ENGINES:
        raise WarehouseError(f"dbt target {target} has type {engine!r}; el/ loads into {', '.join(ENGINES)}")
    return engine


@dataclass(frozen=True)
class Warehouse:
    engine: str  # duckdb, postgres or spark
    # the DuckDB file (duckdb; spark: the control file in the lake); the folder next to it keeps dlt's
    # pipelines and lock files
    path: Path
    postgres: PgConnection | None = None
    lake: Path | None = None  # spark: the lake root dlt's filesystem destination writes to

    @property
    def name(self) -> str:
        if self.postgres:
            return self.postgres.display()
        return f"lake {self.lake}" if self.lake else str(self.path)

    def destination(self) -> Any:
        import dlt

        if self.postgres:
            from dlt.destinations.impl.postgres.configuration import PostgresCredentials

            # resolved here: an empty password (trust auth, ~/.pgpass) is a valid setting, not a missing one
            credentials = PostgresCredentials()
            credentials.parse_native_representation(self.postgres.url())
            credentials.password = self.postgres.password
            credentials.resolve()
            return dlt.destinations.postgres(credentials=credentials)
        if self.lake:
            self.lake.mkdir(parents=True, exist_ok=True)
            return dlt.destinations.filesystem(bucket_url=str(self.lake), layout=LAKE_LAYOUT)
        return dlt.destinations.duckdb(str(self.path))

    def refresh_views(self, dataset: str) -> list[str]:
        """spark: (re-)create a view `<dataset>.<table>` in the control file over each table folder of the
        dataset in the lake (union_by_name: a column added by a later load shows, null in older files);
        dlt's own tables (_dlt_loads, ...) are JSON lines there. The tables it has views for."""
        if not self.lake:
            return []
        folder = self.lake / dataset
        readers = {"parquet": "read_parquet", "jsonl": "read_json"}
        views: dict[str, str] = {}
        for table in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            for ext, reader in readers.items():
                if any(table.glob(f"*.{ext}")):
                    files = str(table / f"*.{ext}").replace("'", "''")
                    views[table.name] = f"select * from {reader}('{files}', union_by_name = true)"
                    break
        with self.connect() as conn:
            conn.execute(f'create schema if not exists "{dataset}"')
            for table, query in views.items():
                conn.execute(f'create or replace view "{dataset}"."{table}" as {query}')
        return list(views)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        """A DB-API connection (committed on success); WarehouseError when it cannot be opened."""
        if self.postgres:
            import psycopg

            try:
                conn = psycopg.connect(self.postgres.url(), connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise WarehouseError(f"{self.name} unreachable: {str(exc).strip().splitlines()[0]}") from exc
            with conn:
                yield conn
            return
        import duckdb

        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise WarehouseError(str(exc).splitlines()[0]) from exc
        with conn:
            yield conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, script: str = "", statements: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
        """Run `script` (statements separated by `;`, no parameters), then each (sql, params) of
        `statements` (`?` placeholders), in one transaction."""
        with self.connect() as conn:
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    conn.execute(statement)
            for sql, params in statements:
                conn.execute(self._sql(sql), params)

    def executemany(self, script: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connect() as conn:
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    conn.execute(statement)
            if self.postgres:
                with conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                conn.executemany(sql, rows)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query as dicts; MissingTableError when a table it reads does not exist."""
        with self.connect(read_only=True) as conn:
            try:
                cursor = conn.execute(self._sql(sql), params)
            except Exception as exc:
                if type(exc).__name__ in ("CatalogException", "UndefinedTable"):
                    raise MissingTableError(str(exc).splitlines()[0]) from exc
                raise
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]

    def check(self) -> None:
        """Fail fast and clearly when the warehouse cannot be opened for writing."""
        with self.connect():
            pass


def warehouse_for(engine: str, path: Path, postgres: PgConnection | None, lake: Path | None = None) -> Warehouse:
    if engine == "postgres":
        return Warehouse("postgres", path, postgres or PgConnection.from_env())
    if engine == "spark":
        assert lake is not None, "a spark warehouse needs its lake root"
        return Warehouse("spark", lake / CONTROL_FILE, lake=lake)
    return Warehouse("duckdb", path)
