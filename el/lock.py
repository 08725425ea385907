"""One load or run at a time per warehouse, refused cleanly when held.

A DuckDB warehouse is locked with an OS file lock next to its file (`<warehouse>.lock`). A PostgreSQL
warehouse is locked with a session-level advisory lock in that database, so two hosts running `el`
against the same database exclude each other too; it is released when the holder's connection ends
(also when the holder is killed). The holder names itself in `application_name`, which the refusal quotes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from el.warehouse import PgConnection, Warehouse

# the advisory lock's two 32-bit keys: the project ("shop" in ASCII) and the warehouse lock itself
ADVISORY_KEYS = (0x73686F70, 1)


class AlreadyRunningError(RuntimeError):
    """Another el process holds the warehouse."""


@contextmanager
def exclusive(warehouse: Path | Warehouse, what: str) -> Iterator[None]:
    if isinstance(warehouse, Warehouse):
        if warehouse.postgres:
            with advisory_lock(warehouse.postgres, what):
                yield
            return
        warehouse = warehouse.path
    with file_lock(warehouse, what):
        yield


@contextmanager
def file_lock(warehouse: Path, what: str) -> Iterator[None]:
    path = warehouse.with_name(warehouse.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunningError(
                f"refused: {holder} is already working on {warehouse}; wait for it to finish and retry"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()})")
        handle.flush()
        yield
    finally:
        handle.close()


@contextmanager
def advisory_lock(postgres: PgConnection, what: str) -> Iterator[None]:
    import psycopg

    from el.warehouse import WarehouseError

    name = f"{what} (pid {os.getpid()})"
    try:
        conn = psycopg.connect(postgres.url(), autocommit=True, connect_timeout=10, application_name=name[:63])
    except psycopg.OperationalError as exc:
        raise WarehouseError(f"{postgres.display()} unreachable: {str(exc).strip().splitlines()[0]}") from exc
    with conn:
        (granted,) = conn.execute("select pg_try_advisory_lock(%s, %s)", ADVISORY_KEYS).fetchone()  # type: ignore[misc]
        if not granted:
            holder = conn.execute(
                "select activity.application_name from pg_locks as locks "
                "join pg_stat_activity as activity on activity.pid = locks.pid "
                "where locks.locktype = 'advisory' and locks.granted and locks.classid = %s and locks.objid = %s "
                "and locks.objsubid = 2 "
                "and locks.database = (select oid from pg_database where datname = current_database())",
                ADVISORY_KEYS,
            ).fetchone()
            who = (holder[0] if holder and holder[0] else "") or "another process"
            raise AlreadyRunningError(
                f"refused: {who} is already working on {postgres.display()}; wait for it to finish and retry"
            )
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s, %s)", ADVISORY_KEYS)
