"""Throwaway PostgreSQL databases for tests and benchmarks, created and dropped through an admin URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("SHOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (user, host, port and query parameters kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(admin_url: str = ADMIN_URL, prefix: str = "shop_elt_scratch") -> Iterator[str]:
    """Create a fresh database and yield its URL; it is dropped afterwards, even after a failure."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"create database {name}")
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"drop database if exists {name} with (force)")
