"""Helpers for the tests: isolated settings, warehouse and source queries, `el` as a child process, local
ports, servers and browsers."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from el.settings import Settings
from tests.python.conftest import PROJECT_ROOT

# the marts `el run` builds (the stream's fct_order_status_hourly is fed by `el stream`), compared row for row
# between engines, orchestrators and full refreshes
BATCH_MARTS = (
    "dim_customers",
    "dim_products",
    "fct_customer_features",
    "fct_daily_revenue",
    "fct_marketing_daily",
    "fct_order_items",
    "fct_orders",
    "fct_rejects",
    "fct_sessions",
    "fct_user_daily_activity",
)
# events the API has delivered so far: received up to the simulated "now" (later ones are still in flight)
SERVED = "received_at <= (select value from meta where key = 'served_until')"


def settings_for(tmp_path: Path) -> Settings:
    """This project, with everything a run writes (warehouse, dbt target and logs, core-mode project
    folder) under `tmp_path`: no test touches the project's data/, target/, logs/ or .dbt_core/."""
    return Settings.under(PROJECT_ROOT, tmp_path)


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment of a child `el` process that uses `settings` (so it writes only under tmp)."""
    return {**os.environ, **settings.as_env(), **extra}


def run_el(settings: Settings, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """`el ARGS` in a child process with `settings` (and `env` on top): its exit code and captured output."""
    return subprocess.run(
        [sys.executable, "-m", "el.cli", *args],
        env=env_for(settings, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chromium() -> str:
    """The headless browser the browser tests drive; they skip, saying why, where there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine (scripts/test.sh installs Debian's chromium when run as root)")


@contextmanager
def warehouse_held_elsewhere(settings: Settings) -> Iterator[subprocess.Popen[str]]:
    """A DuckDB session in another process (a notebook, DBeaver) holds the warehouse file until the block
    ends: nothing else can open it for writing meanwhile. Yields that process."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
            str(settings.warehouse),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:  # never left running, nor hiding the block's own error
            holder.kill()
            holder.wait()


def served_fit_events(events_db: Path) -> tuple[int, int]:
    """The fit events the API has served so far: deliveries (a redelivery counts again) and distinct ids -
    what raw_events.events holds when every served delivery is loaded exactly once."""
    ((deliveries, distinct),) = src(
        events_db, f"select count(*), count(distinct event_id) from events where defect is null and {SERVED}"
    )
    return deliveries, distinct


def wh(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def src(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def latest(table: str, key: str, columns: str) -> str:
    """Raw after dedup: the latest extracted version per key (a back-dated update is still the newest state)."""
    return (
        f"select {columns} from {table} "
        f"qualify row_number() over (partition by {key} order by _extracted_at desc, _dlt_load_id desc) = 1"
    )


@contextmanager
def demo_events_url(settings: Settings) -> Iterator[str | None]:
    """SHOP_EVENTS_URL when set, else the URL of the simulated events API serving the settings'
    sources (None when there is no events store: loading events then fails with a ConfigError)."""
    from shopsim.api import EventsApi
    from shopsim.config import SourcePaths

    store = SourcePaths(settings.sources_root).events_db
    if os.environ.get("SHOP_EVENTS_URL") or not store.exists():
        yield None
        return
    with EventsApi(store) as api:
        yield api.url


def load_sources(settings: Settings, sources: list[str] | None = None, run_id: str | None = None) -> list[Any]:
    """Extract-load the simulated sources of `settings` (every test loads through here)."""
    from el.load import run_load

    with demo_events_url(settings) as url:
        return run_load(settings, sources, run_id, events_url=url)


def api_time(moment: dt.datetime) -> str:
    """`moment` as the demo events API writes received_at and event_timestamp (UTC, microseconds, Z)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def serve_pages(page: Callable[[dict[str, str]], dict[str, Any]]) -> Iterator[str]:
    """An HTTP API on loopback answering every GET with `page(query)` as JSON (the query string's last value
    per name): a stand-in for an events API serving rows the demo API cannot. Yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
            body = json.dumps(page(query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook on loopback: yields its URL and the list every POSTed JSON body is appended to."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
