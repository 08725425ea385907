"""The demo simulator: reproducible by seed, and every configured defect appears at its rate."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi, EventsServer
from shopsim.clock import parse
from shopsim.config import Rates
from tests.python.conftest import within_rate


def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for db, tables in (
        ("shop.sqlite", ["customers", "products", "orders", "order_items", "payments"]),
        ("events.sqlite", ["events"]),
    ):
        conn = sqlite3.connect(root / db)
        for table in tables:
            for row in conn.execute(f"select * from {table} order by 1"):
                digest.update(repr(row).encode())
        conn.close()
    for path in sorted((root / "marketing").iterdir()):
        digest.update(path.name.encode() + path.read_bytes() + str(path.stat().st_mtime).encode())
    return digest.hexdigest()


def test_same_seed_same_data_and_other_seed_differs(make_sources) -> None:
    first = make_sources(days=3, name="a", seed=7, scale=50)
    second = make_sources(days=3, name="b", seed=7, scale=50)
    third = make_sources(days=3, name="c", seed=8, scale=50)
    assert _fingerprint(first.paths.root) == _fingerprint(second.paths.root)
    assert _fingerprint(first.paths.root) != _fingerprint(third.paths.root)


def test_day_by_day_equals_all_at_once(tmp_path: Path) -> None:
    config = SimConfig(seed=3, scale=40)
    stepwise = Simulator(tmp_path / "step", config)
    for _ in range(3):
        stepwise.advance(1)
    at_once = Simulator(tmp_path / "once", config)
    at_once.advance(3)
    assert _fingerprint(stepwise.paths.root) == _fingerprint(at_once.paths.root)
    assert stepwise.current_date() == dt.date(2026, 1, 3)


def test_other_config_in_same_folder_is_refused(tmp_path: Path) -> None:
    Simulator(tmp_path, SimConfig(seed=1, scale=10)).advance(1)
    with pytest.raises(RuntimeError, match="another simulator config"):
        Simulator(tmp_path, SimConfig(seed=2, scale=10)).advance(1)


def test_invalid_rates_are_rejected() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Rates(duplicate=1.5)


def test_event_defects_appear_at_configured_rates(make_sources) -> None:
    rates = Rates(duplicate=0.1, late=0.2, bad_row=0.05)
    sim = make_sources(days=3, scale=150, rates=rates, drift_day=2)
    conn = sqlite3.connect(sim.paths.events_db)
    originals = conn.execute(
        "select event_timestamp, received_at, defect, app_version, event_timestamp >= '2026-01-03' "
        "from events where is_duplicate = 0"
    ).fetchall()
    duplicates = conn.execute("select count(*) from events where is_duplicate = 1").fetchone()[0]
    n = len(originals)
    late = sum(1 for ts, rec, *_ in originals if parse(rec) - parse(ts) > dt.timedelta(days=1))
    bad = [row[2] for row in originals if row[2]]
    assert within_rate(duplicates, n, 0.1)
    assert within_rate(late, n, 0.2)
    assert within_rate(len(bad), n, 0.05)
    assert set(bad) == {"null_key", "unknown_event_type", "malformed_json", "type_drift"}
    # the new column appears exactly from the drift day on
    assert all((version is not None) == bool(after) for *_, version, after in originals)
    # every duplicate repeats an event id that was delivered before, with the same payload
    mismatched = conn.execute(
        "select count(*) from events d join events o on o.event_id = d.event_id and o.is_duplicate = 0 "
        "where d.is_duplicate = 1 and (o.properties is not d.properties or d.received_at <= o.received_at)"
    ).fetchone()[0]
    assert mismatched == 0


def test_shop_bad_rows_at_configured_rate(make_sources) -> None:
    sim = make_sources(days=3, scale=300, rates=Rates(bad_row=0.05), drift_day=1)
    conn = sqlite3.connect(sim.paths.shop_db)
    orders, null_customer = conn.execute("select count(*), count(*) - count(customer_id) from orders").fetchone()
    payments, negative = conn.execute("select count(*), sum(amount < 0) from payments").fetchone()
    items, drifted = conn.execute("select count(*), sum(typeof(quantity) = 'text') from order_items").fetchone()
    assert within_rate(null_customer, orders, 0.05)
    assert within_rate(negative, payments, 0.05)
    assert within_rate(drifted, items, 0.05)
    columns = {row[1] for row in conn.execute("pragma table_info(customers)")}
    assert "loyalty_points" in columns


def _snapshot(conn: sqlite3.Connection) -> dict[int, tuple]:
    return {row[0]: row for row in conn.execute("select * from customers")}


def test_updates_and_late_updates_at_configured_rates(tmp_path: Path) -> None:
    rates = Rates(update=0.3, late_update=0.4, soft_delete=0.0)
    sim = Simulator(tmp_path, SimConfig(scale=400, rates=rates, drift_day=99))
    sim.advance(2)
    conn = sqlite3.connect(sim.paths.shop_db)
    before = _snapshot(conn)
    sim.advance(1)
    after = _snapshot(conn)
    day_start = "2026-01-03"
    changed = [after[key] for key in before if after[key] != before[key]]
    backdated = [row for row in changed if row[7] < day_start]
    assert within_rate(len(changed), len(before), 0.3)
    assert within_rate(len(backdated), len(changed), 0.4)
    # a back-dated update is still stamped after the row was created
    assert all(row[7] > row[6] for row in changed)


def test_restatements_and_spend_defects(tmp_path: Path) -> None:
    config = SimConfig(scale=10, rates=Rates(restatement=0.3, bad_row=0.1), drift_day=5)
    sim = Simulator(tmp_path, config)
    restated = 0
    mtimes: dict[str, float] = {}
    for _ in range(40):
        sim.advance(1)
        current = {p.name: p.stat().st_mtime for p in sim.paths.marketing_dir.iterdir()}
        restated += sum(1 for name, m in current.items() if name in mtimes and mtimes[name] != m)
        mtimes = current
    assert within_rate(restated, 39, 0.3)
    rows, bad = 0, 0
    for path in sorted(sim.paths.marketing_dir.iterdir()):
        with path.open() as handle:
            reader = csv.DictReader(handle)
            has_conversions = "conversions" in (reader.fieldnames or [])
            assert has_conversions == (path.name >= "spend_2026-01-06.csv")
            for row in reader:
                rows += 1
                bad += row["channel"] == "" or row["spend"] == "n/a" or row["spend"].startswith("-")
    # restatements correct negative spends, so measure a lower bound only on the rest
    assert bad > 0 and bad / rows <= 0.1 + 4 * (0.09 / rows) ** 0.5


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_api_pages_every_served_event_once_and_hides_future_arrivals(make_sources) -> None:
    sim = make_sources(days=2, scale=30, rates=Rates(late=0.3))
    conn = sqlite3.connect(sim.paths.events_db)
    served = conn.execute("select count(*) from events where received_at <= '2026-01-02 23:59:59.999999'").fetchone()
    stored = conn.execute("select count(*) from events").fetchone()[0]
    assert stored > served[0], "late events of day 2 must exist but not be served yet"
    with EventsApi(sim.paths.events_db) as api:
        seen, cursor, pages = [], "", 0
        while True:
            status, body = _get(f"{api.url}/events?limit=97&cursor={cursor}")
            assert status == 200
            seen += body["data"]
            pages += 1
            if not body["next_cursor"]:
                break
            cursor = urllib.request.quote(body["next_cursor"])
        assert pages > 2
        assert len(seen) == served[0]
        received = [e["received_at"] for e in seen]
        assert received == sorted(received)
        status, body = _get(f"{api.url}/events?limit=1000&received_since=2026-01-02T12:00:00Z")
        assert all(e["received_at"] >= "2026-01-02T12:00:00Z" for e in body["data"]) and body["data"]
        assert _get(f"{api.url}/events?limit=0")[0] == 400


def test_api_pages_from_received_since_each_event_once_across_ties(make_sources) -> None:
    """Paging with `received_since` and a cursor (what the loader does): each served event from that moment
    once, in order, also when a page ends inside a run of events received in the same microsecond."""
    sim = make_sources(days=2, scale=30, rates=Rates(late=0.3))
    since = "2026-01-02 06:00:00"
    with sqlite3.connect(sim.paths.events_db) as conn:  # 7 arrivals in one microsecond, inside the window
        conn.executemany(
            "insert into events (event_id, user_id, session_id, event_type, event_timestamp, received_at) "
            "values (?, '1', 's-tie', 'page_view', '2026-01-02 07:00:00.000000', '2026-01-02 07:00:00.000000')",
            [(f"tie-{i}",) for i in range(7)],
        )
        expected = [
            event_id
            for (event_id,) in conn.execute(
                "select event_id from events where received_at >= ? and received_at <= '2026-01-02 23:59:59.999999' "
                "order by received_at, seq",
                (since,),
            )
        ]
    with EventsApi(sim.paths.events_db) as api:
        seen, cursor = [], ""
        while True:
            status, body = _get(f"{api.url}/events?limit=3&received_since=2026-01-02T06:00:00Z&cursor={cursor}")
            assert status == 200
            seen += body["data"]
            if not body["next_cursor"]:
                break
            cursor = urllib.request.quote(body["next_cursor"])
    ids = [e["event_id"] for e in seen]
    assert ids == expected and len(ids) > 7
    assert [i for i in ids if i.startswith("tie-")] == [f"tie-{i}" for i in range(7)]
    received = [e["received_at"] for e in seen]
    assert received == sorted(received) and received[0] >= "2026-01-02T06:00:00Z"


def test_api_page_reads_its_own_rows_not_the_pages_before(make_sources) -> None:
    """A page late in a long paging from `received_since` costs SQLite about what the first page costs
    (counted in virtual-machine steps, not seconds): the index range starts at the cursor. It used to
    start at `received_since`, so every page re-read all pages before it (a 1M-event day took ~4x longer
    to load than 10 times a 100k one)."""
    sim = make_sources(days=3, scale=60)
    server = EventsServer(sim.paths.events_db, "127.0.0.1", 0, 0.0, 1)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    try:
        server.conn.set_progress_handler(count, 100)
        costs, cursor = [], None
        while True:
            steps[0] = 0
            page = server.page(50, cursor, "2026-01-01T00:00:00Z")
            costs.append(steps[0])
            cursor = page["next_cursor"]
            if not cursor:
                break
    finally:
        server.server_close()
    assert len(costs) > 20, "enough pages for the earlier ones to show"
    assert max(costs[-5:]) <= 3 * max(costs[:3]), costs


def test_api_injects_faults_at_configured_rate(make_sources) -> None:
    sim = make_sources(days=1, scale=5)
    with EventsApi(sim.paths.events_db, fault_rate=0.25, seed=1) as api:
        statuses = [_get(f"{api.url}/events?limit=5")[0] for _ in range(300)]
    faults = [s for s in statuses if s != 200]
    assert within_rate(len(faults), 300, 0.25)
    assert set(faults) <= {429, 500, 502, 503} and 429 in faults
