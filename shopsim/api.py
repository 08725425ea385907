"""A local HTTP server for the events API: cursor pagination, optional injected 429/5xx faults.

GET /events?limit=N[&cursor=C][&received_since=ISO]
  -> {"data": [...], "next_cursor": C | null}
Events are ordered by (received_at, seq); only events received up to the simulated 'now' are served.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

from shopsim import events

MAX_LIMIT = 1000


def _iso(ts: str) -> str:
    return ts.replace(" ", "T") + "Z"


def _from_iso(ts: str) -> str:
    return ts.rstrip("Z").replace("T", " ")


def to_payload(row: sqlite3.Row) -> dict[str, Any]:
    """One stored event as the API delivers it (JSON types as a real producer would send them)."""
    user_id: Any = row["user_id"]
    if user_id is not None and user_id.isdigit():
        user_id = int(user_id)
    try:
        properties: Any = json.loads(row["properties"])
    except (TypeError, ValueError):
        properties = row["properties"]  # malformed JSON is passed through as text
    payload: dict[str, Any] = {
        "event_id": row["event_id"],
        "user_id": user_id,
        "session_id": row["session_id"],
        "event_type": row["event_type"],
        "event_timestamp": _iso(row["event_timestamp"]),
        "received_at": _iso(row["received_at"]),
        "properties": properties,
    }
    if row["app_version"] is not None:
        payload["app_version"] = row["app_version"]
    return payload


class _Handler(BaseHTTPRequestHandler):
    server: EventsServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/events":
            self._send(404, {"error": "not found"})
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        fault = self.server.next_fault()
        if fault == 429:
            self._send(429, {"error": "rate limited"}, {"Retry-After": "0"})
            return
        if fault:
            self._send(fault, {"error": "server error"})
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            limit = min(int(query.get("limit", "100")), MAX_LIMIT)
            if limit < 1:
                raise ValueError("limit must be positive")
        except ValueError as exc:
            self._send(400, {"error": f"bad limit: {exc}"})
            return
        self._send(200, self.server.page(limit, query.get("cursor"), query.get("received_since")))


class EventsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, db_path: Path, host: str, port: int, fault_rate: float, seed: int, outage_after: int | None = None
    ) -> None:
        super().__init__((host, port), _Handler)
        self.outage_after = outage_after  # answer 503 to every request after this many (an outage)
        self.delay = 0.0  # seconds added to every answer (a slow API, for crash tests)
        self.conn = events.connect(db_path)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.requests = 0
        self.faults = 0

    def next_fault(self) -> int | None:
        with self.lock:
            self.requests += 1
            if self.outage_after is not None and self.requests > self.outage_after:
                self.faults += 1
                return 503
            if self.rng.random() < self.fault_rate:
                self.faults += 1
                return self.rng.choice([429, 500, 502, 503])
            return None

    def page(self, limit: int, cursor: str | None, received_since: str | None) -> dict[str, Any]:
        clauses, params = ["received_at <= ?"], [events.served_until(self.conn) or ""]
        since = _from_iso(received_since) if received_since else None
        if cursor:
            last_received, last_seq = cursor.rsplit("|", 1)
            clauses.append("(received_at > ? or (received_at = ? and seq > ?))")
            params += [last_received, last_received, last_seq]
            # the index range starts at the cursor, not at `received_since`: each page reads its own rows only
            # (SQLite cannot seek on the `or` above; from `received_since` every page re-read the pages before)
            since = max(since or last_received, last_received)
        if since is not None:
            clauses.append("received_at >= ?")
            params.append(since)
        sql = f"select * from events where {' and '.join(clauses)} order by received_at, seq limit ?"
        with self.lock:
            rows = self.conn.execute(sql, [*params, limit]).fetchall()
        next_cursor = f"{rows[-1]['received_at']}|{rows[-1]['seq']}" if len(rows) == limit else None
        return {"data": [to_payload(r) for r in rows], "next_cursor": next_cursor}


class EventsApi:
    """Runs the events API in a background thread: `with EventsApi(path) as api: api.url`."""

    def __init__(
        self,
        db_path: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        seed: int = 0,
        outage_after: int | None = None,
    ):
        self.server = EventsServer(db_path, host, port, fault_rate, seed, outage_after)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EventsApi:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
