"""The clickstream behind the events API: sessions of events, at-least-once, late, out of order."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from shopsim.clock import day_start, fmt, random_time
from shopsim.config import SimConfig

SCHEMA = """
create table if not exists events (
    seq integer primary key autoincrement,
    event_id text,
    user_id text,
    session_id text,
    event_type text,
    event_timestamp text not null,
    received_at text not null,
    properties text,
    app_version text,
    is_duplicate integer not null default 0,
    defect text
);
create index if not exists events_received on events (received_at, seq);
create table if not exists meta (key text primary key, value text not null);
"""

EVENT_TYPES = ["page_view", "click", "add_to_cart", "purchase", "signup", "logout"]
EVENT_WEIGHTS = [55, 20, 12, 5, 4, 4]
PAGES = ["/", "/search", "/category/shoes", "/category/apparel", "/product", "/cart", "/checkout"]
BAD_KINDS = ["null_key", "unknown_event_type", "malformed_json", "type_drift"]
COLUMNS = (
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "event_timestamp",
    "received_at",
    "properties",
    "app_version",
    "is_duplicate",
    "defect",
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.executescript(SCHEMA)
    return conn


def served_until(conn: sqlite3.Connection) -> str | None:
    """The API only serves events received up to the simulated 'now'."""
    row = conn.execute("select value from meta where key = 'served_until'").fetchone()
    return row[0] if row else None


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _properties(rng: random.Random, event_type: str) -> dict[str, Any]:
    props: dict[str, Any] = {"page": rng.choice(PAGES)}
    if event_type in ("add_to_cart", "purchase"):
        props["product_id"] = rng.randint(1, 40)
        props["value"] = round(rng.uniform(5, 250), 2)
    return props


def generate_day(
    conn: sqlite3.Connection, config: SimConfig, day_index: int, rng: random.Random, user_ids: list[int]
) -> None:
    """Add the events that happen on one day; some are received days later or twice."""
    day = config.start_date + dt.timedelta(days=day_index)
    rates = config.rates
    drifted = day_index >= config.drift_day
    rows: list[tuple[Any, ...]] = []
    for _ in range(config.scale * 2):
        user_id = rng.choice(user_ids)
        session_id = _uuid(rng)
        moment = random_time(rng, day)
        for _ in range(rng.randint(1, 8)):
            # mostly short gaps, sometimes a pause longer than 30 minutes inside one source session
            moment += dt.timedelta(seconds=rng.uniform(5, 600) if rng.random() < 0.9 else rng.uniform(1900, 5000))
            if moment.date() != day:
                break
            event_type = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
            received = moment + dt.timedelta(seconds=rng.uniform(0.1, 30))
            if rng.random() < rates.late:
                received += dt.timedelta(days=rng.randint(1, config.max_late_days), seconds=rng.uniform(0, 3600))
            record: dict[str, Any] = {
                "event_id": _uuid(rng),
                "user_id": str(user_id),
                "session_id": session_id,
                "event_type": event_type,
                "event_timestamp": fmt(moment),
                "received_at": fmt(received),
                "properties": json.dumps(_properties(rng, event_type), sort_keys=True),
                "app_version": f"2.{day_index}.0" if drifted else None,
                "is_duplicate": 0,
                "defect": None,
            }
            if rng.random() < rates.bad_row:
                record = _break(record, rng)
            rows.append(tuple(record[c] for c in COLUMNS))
            if rng.random() < rates.duplicate:
                again = dict(record, is_duplicate=1)
                again["received_at"] = fmt(received + dt.timedelta(seconds=rng.uniform(60, 6 * 3600)))
                rows.append(tuple(again[c] for c in COLUMNS))
    conn.executemany(f"insert into events ({', '.join(COLUMNS)}) values ({', '.join('?' for _ in COLUMNS)})", rows)
    until = fmt(day_start(day + dt.timedelta(days=1)) - dt.timedelta(microseconds=1))
    conn.execute("insert or replace into meta (key, value) values ('served_until', ?)", (until,))
    conn.commit()


def _break(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(BAD_KINDS)
    broken = dict(record, defect=kind)
    if kind == "null_key":
        broken["event_id"] = None
    elif kind == "unknown_event_type":
        broken["event_type"] = rng.choice(["pageview", "PAGE_VIEW", "scroll_depth"])
    elif kind == "malformed_json":
        broken["properties"] = broken["properties"][:-3]
    else:
        broken["user_id"] = f"u-{broken['user_id']}"
    return broken
