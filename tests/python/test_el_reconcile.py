"""Hard deletes: key reconciliation appends one tombstone per vanished key (semantics 9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shopsim import SimConfig, Simulator
from tests.python.el_helpers import load_sources, settings_for, wh


def test_hard_deleted_rows_get_one_tombstone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_DB_URL", raising=False)
    monkeypatch.delenv("SHOP_KEY_RECONCILIATION", raising=False)
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=10))
    sim.advance(1)
    load_sources(settings, ["shop_db"])
    # rows that are in raw and not deleted
    ((customer,),) = wh(settings, "select min(customer_id) from raw_shop.customers where deleted_at is null")
    ((order,),) = wh(settings, "select min(order_id) from raw_shop.orders where deleted_at is null")
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:
        conn.execute("delete from customers where customer_id = ?", (customer,))
        conn.execute("delete from orders where order_id = ?", (order,))
    conn.close()
    load_sources(settings, ["shop_db"])
    for table, key, value in (("customers", "customer_id", customer), ("orders", "order_id", order)):
        tombstones = wh(
            settings,
            f"select deleted_at, _source, _dlt_load_id from raw_shop.{table} where {key} = {value} "
            "and _source like '%#reconcile'",
        )
        assert len(tombstones) == 1, table
        deleted_at, origin, load_id = tombstones[0]
        assert deleted_at is not None and origin == f"shop_db.{table}#reconcile" and load_id
        latest = wh(settings, f"select _source from raw_shop.{table} where {key} = {value} "
                              "order by _extracted_at desc limit 1")  # fmt: skip
        assert latest == [(f"shop_db.{table}#reconcile",)]
    load_sources(settings, ["shop_db"])
    assert wh(settings, "select count(*) from raw_shop.customers where _source like '%#reconcile'") == [(1,)]
    assert wh(settings, "select count(*) from raw_shop.orders where _source like '%#reconcile'") == [(1,)]
    # nothing else was marked deleted
    assert wh(settings, "select count(*) from raw_shop.order_items where _source like '%#reconcile'") == [(0,)]


def test_reconciliation_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_DB_URL", raising=False)
    monkeypatch.setenv("SHOP_KEY_RECONCILIATION", "off")
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=10))
    sim.advance(1)
    load_sources(settings, ["shop_db"])
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:
        conn.execute("delete from customers where customer_id = (select min(customer_id) from customers)")
    conn.close()
    load_sources(settings, ["shop_db"])
    assert wh(settings, "select count(*) from raw_shop.customers where _source like '%#reconcile'") == [(0,)]
