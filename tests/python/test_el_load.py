"""Extract-load against real DuckDB, the real events HTTP server and the SQLite shop database."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest

from el.config import ConfigError
from el.load import LoadError
from el.lock import AlreadyRunningError, exclusive
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from shopsim.config import Rates
from tests.python.el_helpers import (
    SERVED,
    latest,
    load_sources,
    run_el,
    served_fit_events,
    settings_for,
    src,
    warehouse_held_elsewhere,
    wh,
)

SHOP_TABLES = {
    "customers": ("customer_id", "customer_id, tier, updated_at"),
    "products": ("product_id", "product_id, price, updated_at"),
    "orders": ("order_id", "order_id, customer_id, status, updated_at"),
    "order_items": ("order_item_id", "order_item_id, order_id, quantity, updated_at"),
    "payments": ("payment_id", "payment_id, amount, status, updated_at"),
}
FIT = {
    "customers": "1 = 1",
    "products": "price >= 0",
    "orders": "customer_id is not null",
    "order_items": "typeof(quantity) = 'integer'",
    "payments": "amount >= 0",
}


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = settings_for(tmp_path)
    for name in ("SHOP_DB_URL", "SHOP_EVENTS_URL", "SHOP_FILES_DIR", "SHOP_LAG_HOURS", "SHOP_EVENTS_LAG_HOURS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOP_EVENTS_BACKOFF_FACTOR", "0.01")
    sim = Simulator(settings.sources_root, SimConfig(scale=60, rates=Rates(bad_row=0.05, late_update=0.3)))
    return settings, sim


def _norm(rows: list[tuple]) -> set[tuple]:
    return {tuple(str(v).rstrip("0").rstrip(".") if v is not None else None for v in row) for row in rows}


def _naive(value: object) -> dt.datetime:
    """A timestamp of either side (SQLite's text, DuckDB's datetime) as a naive UTC datetime."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _assert_raw_matches_source(settings, sim) -> None:
    for table, (key, columns) in SHOP_TABLES.items():
        raw = wh(settings, latest(f"raw_shop.{table}", key, columns))
        source = src(sim.paths.shop_db, f"select {columns} from {table} where {FIT[table]}")
        assert _norm(raw) == _norm(source), table


def _spend_rows(sim: Simulator) -> tuple[int, int]:
    """(rows, rows breaking the contract) of the spend files as they are now: the simulator's bad rows
    have no channel, or a spend that is not a number or is negative."""
    rows = bad = 0
    for path in sim.paths.marketing_dir.iterdir():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows += 1
                try:
                    spend = float(row["spend"])
                except ValueError:
                    bad += 1
                    continue
                bad += not row["channel"] or spend < 0
    return rows, bad


def test_first_load_lands_every_row_or_reject(demo) -> None:
    settings, sim = demo
    sim.advance(2)
    metrics = load_sources(settings)
    assert {m.status for m in metrics} == {"ok"}
    for table in SHOP_TABLES:
        (total,) = src(sim.paths.shop_db, f"select count(*) from {table}")[0]
        (fit,) = src(sim.paths.shop_db, f"select count(*) from {table} where {FIT[table]}")[0]
        assert wh(settings, f"select count(*) from raw_shop.{table}")[0][0] == fit
        rejected = wh(settings, f"select count(*) from raw_shop.rejects where source_table = '{table}'")[0][0]
        assert rejected == total - fit, table
    _assert_raw_matches_source(settings, sim)
    # lineage columns on every raw row
    assert (
        wh(
            settings,
            "select count(*) from raw_shop.orders where _extracted_at is null or _source is null "
            "or _dlt_load_id is null",
        )[0][0]
        == 0
    )
    # events: every served event is either in raw or in rejects, with the reason class
    served = src(
        sim.paths.events_db,
        f"select count(*), count(defect) from events where {SERVED}",
    )[0]
    loaded = wh(settings, "select count(*) from raw_events.events")[0][0]
    rejects = dict(wh(settings, "select reason_code, count(*) from raw_events.rejects group by 1"))
    assert loaded + sum(rejects.values()) == served[0]
    assert sum(rejects.values()) == served[1]
    assert set(rejects) == {"null_key", "type_drift", "unknown_value", "malformed_JSON"}
    # spend files: every CSV row lands once, in raw when it keeps the contract, else in rejects
    lines, bad = _spend_rows(sim)
    spend = wh(settings, "select count(*) from raw_marketing.spend")[0][0]
    has_rejects = wh(
        settings,
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw_marketing' and table_name = 'rejects'",
    )[0][0]
    spend_rejects = wh(settings, "select count(*) from raw_marketing.rejects")[0][0] if has_rejects else 0
    assert (spend, spend_rejects) == (lines - bad, bad)
    # metrics stored per table with the same run id
    stored = wh(settings, "select table_name, rows_loaded, rejects from el_meta.load_metrics")
    assert {(m.table_name, m.rows_loaded, m.rejects) for m in metrics} == set(stored)
    assert len({m.run_id for m in metrics}) == 1
    assert all(m.bytes > 0 for m in metrics if m.rows_loaded)
    # loaded packages keep their bookkeeping, not a second copy of the data on local disk
    pipelines = settings.pipelines_dir
    assert len(list(pipelines.glob("*/load/loaded/*/package_completed.json"))) == len(metrics)
    assert list(pipelines.glob("*/load/loaded/*/completed_jobs/*")) == []


def test_second_run_loads_only_new_rows(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    sim.advance(1)
    load_sources(settings)
    before = {t: wh(settings, f"select count(*) from raw_shop.{t}")[0][0] for t in SHOP_TABLES}
    cursor = {t: wh(settings, f"select max(updated_at) from raw_shop.{t}")[0][0] for t in SHOP_TABLES}
    again = load_sources(settings)
    assert sum(m.rows_loaded + m.rejects for m in again) == 0, "nothing new: nothing loaded"
    sim.advance(1)
    load_sources(settings)
    for table in SHOP_TABLES:
        stamp = cursor[table].strftime("%Y-%m-%d %H:%M:%S.%f")
        (new,) = src(sim.paths.shop_db, f"select count(*) from {table} where updated_at > '{stamp}' and {FIT[table]}")[
            0
        ]
        after = wh(settings, f"select count(*) from raw_shop.{table}")[0][0]
        assert after - before[table] == new, table


def test_lag_window_catches_backdated_updates(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    for _ in range(3):
        sim.advance(1)
        load_sources(settings)
    _assert_raw_matches_source(settings, sim)
    # the last run loaded new versions stamped before the previous run's cursor: only the lag finds them
    caught = 0
    for table, (key, _) in SHOP_TABLES.items():
        caught += wh(
            settings,
            f"""
            with runs as (select _extracted_at, max(updated_at) as cursor from raw_shop.{table} group by 1),
            last_run as (select max(_extracted_at) as last_at from runs),
            previous as (select max(cursor) as cursor from runs where _extracted_at < (select last_at from last_run))
            select count(*) from raw_shop.{table} as r
            where r._extracted_at = (select last_at from last_run)
              and r.updated_at < (select cursor from previous)
              and not exists (
                  select 1 from raw_shop.{table} as o
                  where o.{key} = r.{key} and o.updated_at = r.updated_at and o._extracted_at < r._extracted_at
              )""",
        )[0][0]
    assert caught > 0


def test_without_lag_backdated_updates_are_missed(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proves the lag window is needed: with lag 0 the raw copy drifts from the source."""
    settings, sim = demo
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    for _ in range(3):
        sim.advance(1)
        load_sources(settings, ["shop_db"])
    missed = 0
    for table, (key, _) in SHOP_TABLES.items():
        source = {
            k: _naive(at)
            for k, at in src(sim.paths.shop_db, f"select {key}, updated_at from {table} where {FIT[table]}")
        }
        raw = {k: _naive(at) for k, at in wh(settings, latest(f"raw_shop.{table}", key, f"{key}, updated_at"))}
        cursor = max(raw.values())
        assert set(raw) == set(source), table  # no key is lost: inserts are stamped now
        stale = {k for k in source if raw[k] != source[k]}
        missed += len(stale)
        for k in stale:  # each missed version is back-dated behind the cursor, and raw holds an older one
            assert raw[k] < source[k] < cursor, (table, k, raw[k], source[k], cursor)
    assert missed > 0


def test_api_faults_are_retried(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    sim.advance(1)
    monkeypatch.setenv("SHOP_EVENTS_PAGE_SIZE", "40")
    with EventsApi(sim.paths.events_db, fault_rate=0.3, seed=5) as api:
        monkeypatch.setenv("SHOP_EVENTS_URL", api.url)
        load_sources(settings, ["events_api"])
        faults = api.server.faults
    assert faults > 0
    served = src(
        sim.paths.events_db,
        f"select count(*) from events where {SERVED}",
    )[0][0]
    loaded = wh(settings, "select (select count(*) from raw_events.events) + (select count(*) from raw_events.rejects)")
    assert loaded[0][0] == served


def test_outage_mid_load_then_rerun_neither_loses_nor_duplicates(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    sim.advance(2)
    monkeypatch.setenv("SHOP_EVENTS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SHOP_EVENTS_PAGE_SIZE", "50")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    with EventsApi(sim.paths.events_db, outage_after=3) as api:
        monkeypatch.setenv("SHOP_EVENTS_URL", api.url)
        with pytest.raises(LoadError, match=r"events_api\.events failed"):
            load_sources(settings, ["events_api"])
    failed = wh(settings, "select status, error from el_meta.load_metrics")
    assert failed[0][0] == "failed" and failed[0][1]
    with EventsApi(sim.paths.events_db) as api:
        monkeypatch.setenv("SHOP_EVENTS_URL", api.url)
        load_sources(settings, ["events_api"])
    deliveries, fit = served_fit_events(sim.paths.events_db)
    assert wh(settings, "select count(distinct event_id) from raw_events.events")[0][0] == fit
    assert wh(settings, "select count(*) from raw_events.events")[0][0] == deliveries, "no delivery loaded twice"


def test_restated_file_is_loaded_again(demo) -> None:
    settings, sim = demo
    sim.advance(1)
    load_sources(settings, ["marketing_files"])
    first = sim.paths.marketing_dir / "spend_2026-01-01.csv"
    text = first.read_text()
    first.write_text(text)  # re-dropped: same name, newer modification time
    stamp = (dt.datetime(2026, 1, 3, tzinfo=dt.UTC)).timestamp()
    import os

    os.utime(first, (stamp, stamp))
    load_sources(settings, ["marketing_files"])
    versions = wh(
        settings,
        "select count(distinct _file_modified_at) from raw_marketing.spend where _file_name = 'spend_2026-01-01.csv'",
    )[0][0]
    assert versions == 2


def test_concurrent_load_is_refused_and_warehouse_intact(demo) -> None:
    settings, sim = demo
    sim.advance(1)
    load_sources(settings, ["marketing_files"])
    before = wh(settings, "select count(*) from raw_marketing.spend")[0][0]
    with exclusive(settings.warehouse, "test holder"):
        with pytest.raises(AlreadyRunningError, match="refused: test holder"):
            load_sources(settings)
        done = run_el(settings, "load", "marketing_files")
        assert done.returncode == 2 and "refused" in done.stderr
    assert wh(settings, "select count(*) from raw_marketing.spend")[0][0] == before


def test_bad_config_and_unreachable_source_give_clear_errors(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    sim.advance(1)
    with pytest.raises(ConfigError, match="unknown source"):
        load_sources(settings, ["nope"])
    monkeypatch.setenv("SHOP_DB_URL", "not-a-url")
    with pytest.raises(ConfigError, match="not a database URL"):
        load_sources(settings, ["shop_db"])
    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(LoadError, match="source database unreachable"):
        load_sources(settings, ["shop_db"])
    monkeypatch.setenv("SHOP_LAG_HOURS", "soon")
    with pytest.raises(ConfigError, match="SHOP_LAG_HOURS"):
        load_sources(settings, ["shop_db"])


def test_cursor_state_lives_in_the_warehouse(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Losing the local dlt working folder loses nothing: state is restored from the destination."""
    settings, sim = demo
    monkeypatch.setenv("SHOP_LAG_HOURS", "0")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    sim.advance(1)
    load_sources(settings)
    before = wh(settings, "select count(*) from raw_shop.orders")[0][0]
    shutil.rmtree(settings.pipelines_dir)
    again = load_sources(settings)
    assert sum(m.rows_loaded for m in again) == 0
    assert wh(settings, "select count(*) from raw_shop.orders")[0][0] == before


def test_warehouse_held_by_another_process_gives_a_clear_error(demo) -> None:
    settings, sim = demo
    sim.advance(1)
    with warehouse_held_elsewhere(settings), pytest.raises(LoadError, match="cannot be opened for writing"):
        load_sources(settings, ["marketing_files"])
