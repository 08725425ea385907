"""A throwaway PostgreSQL database on the loopback server, filled from the simulated shop DB."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shopsim import pg

PG_ADMIN = pg.ADMIN_URL

PG_SCHEMA = {
    "customers": "customer_id integer primary key, email text, first_name text, last_name text, country_code text, "
    "tier text, created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp",
    "products": "product_id integer primary key, sku text, name text, category text, price numeric(12, 2), "
    "created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp",
    "orders": "order_id integer primary key, customer_id integer, status text, currency text, "
    "ordered_at timestamp not null, created_at timestamp not null, updated_at timestamp not null, "
    "deleted_at timestamp",
    "order_items": "order_item_id integer primary key, order_id integer, product_id integer, quantity integer, "
    "unit_price numeric(12, 2), created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp",
    "payments": "payment_id integer primary key, order_id integer, method text, amount numeric(12, 2), status text, "
    "created_at timestamp not null, updated_at timestamp not null, deleted_at timestamp",
}
# a typed database cannot hold SQLite's type drift: those rows are not copied
COPY_FILTER = {"order_items": "typeof(quantity) = 'integer'"}


# what libpq says when no server answers; anything else (a role or database that does not exist, bad
# credentials, too many connections) is a server that is there and misconfigured: a failure, not a skip
UNREACHABLE = ("connection refused", "could not translate host name", "timeout expired", "no such file or directory")


def admin_connect():  # type: ignore[no-untyped-def]
    import psycopg  # a core dependency: a broken install fails

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        if not any(sign in reason.lower() for sign in UNREACHABLE):
            raise
        print(f"skipped: no PostgreSQL reachable at {PG_ADMIN}: {reason[:200]}")
        pytest.skip(f"no PostgreSQL reachable at {PG_ADMIN}: {reason[:200]}")


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create a fresh database and yield its URL (the test is skipped when no server is reachable)."""
    admin_connect().close()
    with pg.scratch_database(PG_ADMIN, prefix="shop_elt_test") as url:
        yield url


def copy_shop(sqlite_path: Path, url: str) -> dict[str, int]:
    """Upsert every table of the simulated shop DB into PostgreSQL; returns rows per table."""
    import psycopg

    source = sqlite3.connect(sqlite_path)
    counts = {}
    with psycopg.connect(url, autocommit=False) as conn:
        for table, ddl in PG_SCHEMA.items():
            conn.execute(f"create table if not exists {table} ({ddl})")
            columns = [c.split()[0] for c in ddl.split(", ") if not c.split()[0].isdigit() and c.split()[0] != "2)"]
            names = ", ".join(columns)
            where = COPY_FILTER.get(table, "1 = 1")
            rows = source.execute(f"select {names} from {table} where {where}").fetchall()
            key = columns[0]
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            with conn.cursor() as cur:
                cur.executemany(
                    f"insert into {table} ({names}) values ({', '.join(['%s'] * len(columns))}) "
                    f"on conflict ({key}) do update set {updates}",
                    rows,
                )
            counts[table] = conn.execute(f"select count(*) from {table}").fetchone()[0]
        conn.commit()
    source.close()
    return counts
