"""The shop DB load through DuckDB's postgres extension (el/sources/shop_db_direct.py) against the dlt
path on the same PostgreSQL data: same raw rows, same rejects and reasons, incremental slices, kill -9
atomicity, and the fallback to dlt when the extension is absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from el.contracts import SHOP_CONTRACTS
from el.sources import shop_db_direct as direct
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import env_for, latest, load_sources, settings_for, wh
from tests.python.pg import copy_shop, scratch_database

pytestmark = pytest.mark.postgres

TABLES = tuple(SHOP_CONTRACTS)
REJECT_COLUMNS = "source, source_table, reason_code, reason, record, _source"


def _require_extension() -> None:
    """The extension is a pinned core dependency (duckdb-extension-postgres, constraints.txt): when it
    cannot be loaded the install is broken or duckdb was bumped past its builds, and production would
    fall back to dlt for good - a failure, not a skip."""
    try:
        direct.extension_file()
    except direct.DirectUnavailableError as exc:
        pytest.fail(f"DuckDB's postgres extension cannot be loaded: {exc}")


def _raw(settings: Any, table: str) -> list[tuple[Any, ...]]:
    """Raw rows without the per-load columns (load id, extraction time), sorted: a multiset."""
    columns = [
        row[0]
        for row in wh(settings, f"describe raw_shop.{table}")
        if row[0] not in ("_dlt_load_id", "_extracted_at", "_dlt_id")
    ]
    return sorted(wh(settings, f"select {', '.join(columns)} from raw_shop.{table}"), key=repr)


def _rejects(settings: Any) -> list[tuple[Any, ...]]:
    return sorted(wh(settings, f"select {REJECT_COLUMNS} from raw_shop.rejects"), key=repr)


def _paths(settings: Any) -> set[tuple[str, str]]:
    return set(wh(settings, "select table_name, path from el_meta.load_metrics where pipeline_name = 'shop_db'"))


def test_direct_path_equals_dlt_path_full_and_incremental(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_extension()
    via_dlt, via_direct = settings_for(tmp_path / "dlt"), settings_for(tmp_path / "direct")
    sim = Simulator(tmp_path / "sources", SimConfig(scale=60, rates=Rates(bad_row=0.05)))
    with scratch_database() as url:
        monkeypatch.setenv("SHOP_DB_URL", url)
        monkeypatch.setenv("SHOP_LAG_HOURS", "0")
        for day in range(2):
            sim.advance(2 if day == 0 else 1)
            copy_shop(sim.paths.shop_db, url)
            monkeypatch.setenv(direct.DIRECT_ENV, "off")
            slow = {m.table_name: (m.rows_loaded, m.rejects) for m in load_sources(via_dlt, ["shop_db"])}
            monkeypatch.setenv(direct.DIRECT_ENV, "auto")
            fast = {m.table_name: (m.rows_loaded, m.rejects) for m in load_sources(via_direct, ["shop_db"])}
            assert fast == slow, day
            assert sum(loaded for loaded, _ in fast.values()) > 0
            if day == 1:  # the second day is an incremental slice, not the whole table again
                assert fast["orders"][0] < wh(via_direct, "select count(*) from raw_shop.orders")[0][0]
            for table in TABLES:
                assert _raw(via_direct, table) == _raw(via_dlt, table), (day, table)
            assert _rejects(via_direct) == _rejects(via_dlt), day
        reasons = {row[2] for row in _rejects(via_direct)}
        assert {"null_key", "negative_amount"} <= reasons
        assert _paths(via_direct) == {(table, direct.PATH_NAME) for table in TABLES}
        assert _paths(via_dlt) == {(table, "dlt") for table in TABLES}
        # lineage as on the dlt path: every raw row has its load id (listed in _dlt_loads), time and source
        for table in TABLES:
            lineage = (
                "count(_extracted_at) = count(*) and count(_source) = count(*) and count(*) > 0 and "
                "count(*) filter (where _dlt_load_id in (select load_id from raw_shop._dlt_loads)) = count(*)"
            )
            assert wh(via_direct, f"select {lineage} from raw_shop.{table}") == [(True,)], table
        assert wh(via_direct, "select count(*) from raw_shop.rejects where _dlt_id is null") == [(0,)]
        record = json.loads(wh(via_direct, "select record from raw_shop.rejects limit 1")[0][0])
        assert "updated_at" in record


def test_direct_path_lag_window_appends_each_version_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_extension()
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40, rates=Rates(bad_row=0.05)))
    with scratch_database() as url:
        monkeypatch.setenv("SHOP_DB_URL", url)
        monkeypatch.setenv("SHOP_LAG_HOURS", "24")  # a wide window: every run re-reads the last day
        monkeypatch.setenv("SHOP_EL_DIRECT", "auto")
        sim.advance(2)
        copy_shop(sim.paths.shop_db, url)
        load_sources(settings, ["shop_db"])
        rejects = wh(settings, "select count(*) from raw_shop.rejects")[0][0]
        again = load_sources(settings, ["shop_db"])
        assert sum(m.rows_loaded + m.rejects for m in again) == 0  # the window re-read, nothing appended twice
        assert wh(settings, "select count(*) from raw_shop.rejects")[0][0] == rejects
        sim.advance(1)
        copy_shop(sim.paths.shop_db, url)
        load_sources(settings, ["shop_db"])
        import psycopg

        with psycopg.connect(url) as conn:
            source = set(conn.execute("select order_id, status, updated_at from orders where customer_id is not null"))
        assert set(wh(settings, latest("raw_shop.orders", "order_id", "order_id, status, updated_at"))) == source
        versions = "select count(*) = count(distinct (order_id, updated_at)) from raw_shop.orders"
        assert wh(settings, versions) == [(True,)]
        assert _paths(settings) == {(table, direct.PATH_NAME) for table in TABLES}  # every load went direct


def test_fallback_to_dlt_when_the_extension_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=20))
    with scratch_database() as url:
        monkeypatch.setenv("SHOP_DB_URL", url)
        monkeypatch.setenv("SHOP_LAG_HOURS", "0")
        # how the fallback is forced: the extension file named by the override does not exist
        monkeypatch.setenv(direct.EXTENSION_ENV, str(tmp_path / "absent.duckdb_extension"))
        sim.advance(1)
        counts = copy_shop(sim.paths.shop_db, url)
        metrics = {m.table_name: m for m in load_sources(settings, ["shop_db"])}
    assert {table: m.path for table, m in metrics.items()} == dict.fromkeys(TABLES, "dlt")
    assert metrics["customers"].rows_loaded == counts["customers"] > 0
    assert wh(settings, "select count(*) from raw_shop.customers")[0][0] == counts["customers"]
    assert _paths(settings) == {(table, "dlt") for table in TABLES}


@pytest.mark.slow
def test_kill_9_during_direct_load_then_rerun_is_exactly_once(tmp_path: Path) -> None:
    _require_extension()
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=20))
    sim.advance(1)
    rows = 600_000
    with scratch_database() as url:
        copy_shop(sim.paths.shop_db, url)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:  # a big last table: the kill lands in its load
            conn.execute(
                "insert into payments select 1000000 + g, g % 50, 'card', (g % 1000) - 5, 'paid', "
                "timestamp '2026-01-01' + g * interval '1 second', timestamp '2026-01-01' + g * interval '1 second', "
                f"null from generate_series(1, {rows}) as g"
            )
            counted = "select count(*), count(*) filter (where amount < 0) from payments"
            total, negative = conn.execute(counted).fetchone()
        env = env_for(settings, SHOP_DB_URL=url, SHOP_LAG_HOURS="0", SHOP_KEY_RECONCILIATION="off")
        loader = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "load", "shop_db"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert loader.stdout is not None
        for line in loader.stdout:
            if "shop_db.order_items" in line:  # payments is being loaded now
                break
        time.sleep(0.3)
        os.kill(loader.pid, signal.SIGKILL)
        loader.wait()
        assert loader.returncode == -signal.SIGKILL
        # all or nothing of the table whose load was killed (its raw table was created in that transaction)
        exists = "select count(*) from information_schema.tables where table_name = 'payments'"
        if wh(settings, exists) == [(1,)]:
            assert wh(settings, "select count(*) from raw_shop.payments")[0][0] in (0, total - negative)
        assert wh(settings, "select count(*) from raw_shop.rejects where source_table = 'payments'")[0][0] in (
            0,
            negative,
        )
        rerun = subprocess.run(
            [sys.executable, "-m", "el.cli", "load", "shop_db"], env=env, capture_output=True, text=True, check=False
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "path duckdb_postgres" in rerun.stdout
        assert wh(settings, "select count(*), count(distinct payment_id) from raw_shop.payments") == [
            (total - negative, total - negative)
        ]
        rejected = "select count(*) from raw_shop.rejects where source_table = 'payments'"
        assert wh(settings, rejected) == [(negative,)]


def test_switching_between_paths_keeps_raw_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """direct, then dlt (extension gone), then direct again on one warehouse: every load lands, raw after
    dedup equals the source, and the direct path appends no version raw already holds (the dlt path,
    resuming from its own older state, does re-append: docs/design.md)."""
    _require_extension()
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=40, rates=Rates(bad_row=0.05)))
    versions = "select order_id, updated_at from raw_shop.orders"
    with scratch_database() as url:
        monkeypatch.setenv("SHOP_DB_URL", url)
        monkeypatch.setenv("SHOP_LAG_HOURS", "6")  # the default window: back-dated updates are caught
        used, before = [], set()
        for day, mode in enumerate(("auto", "off", "auto")):
            sim.advance(2 if day == 0 else 1)
            copy_shop(sim.paths.shop_db, url)
            monkeypatch.setenv(direct.DIRECT_ENV, mode)
            before = set(wh(settings, versions)) if day == 2 else before
            metrics = load_sources(settings, ["shop_db"])
            used.append({m.path for m in metrics})
        assert used == [{direct.PATH_NAME}, {"dlt"}, {direct.PATH_NAME}]
        last = next(m.load_id for m in metrics if m.table_name == "orders")
        appended = wh(settings, f"{versions} where _dlt_load_id = '{last}'")
        assert appended and not set(appended) & before
        import psycopg

        with psycopg.connect(url) as conn:
            source = set(conn.execute("select order_id, status, updated_at from orders where customer_id is not null"))
        assert set(wh(settings, latest("raw_shop.orders", "order_id", "order_id, status, updated_at"))) == source
