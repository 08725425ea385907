"""The shop DB loader against a real PostgreSQL (connectorx Arrow backend), incremental and with rejects,
and dbt building on what it landed (the production path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.sources.shop_db import backend_for
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import latest, load_sources, settings_for, wh
from tests.python.pg import copy_shop, scratch_database

pytestmark = pytest.mark.postgres


def test_postgres_to_duckdb_incremental_with_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path)
    sim = Simulator(settings.sources_root, SimConfig(scale=80, rates=Rates(bad_row=0.05)))
    with scratch_database() as url:
        assert backend_for(url) == "connectorx"
        monkeypatch.setenv("SHOP_DB_URL", url)
        monkeypatch.setenv("SHOP_LAG_HOURS", "0")
        sim.advance(2)
        counts = copy_shop(sim.paths.shop_db, url)
        first = {m.table_name: m for m in load_sources(settings, ["shop_db"])}
        import psycopg

        with psycopg.connect(url) as conn:
            null_orders = conn.execute("select count(*) from orders where customer_id is null").fetchone()[0]
            negative = conn.execute("select count(*) from payments where amount < 0").fetchone()[0]
        assert null_orders > 0 and negative > 0
        assert first["orders"].rows_loaded == counts["orders"] - null_orders
        assert first["orders"].rejects == null_orders
        assert first["payments"].rejects == negative
        assert first["customers"].rows_loaded == counts["customers"]
        reasons = dict(wh(settings, "select source_table, min(reason_code) from raw_shop.rejects group by 1"))
        assert reasons == {"orders": "null_key", "payments": "negative_amount"}

        # nothing new: nothing loaded; a new day: only the changed rows, and raw-after-dedup equals the source
        assert sum(m.rows_loaded + m.rejects for m in load_sources(settings, ["shop_db"])) == 0
        monkeypatch.setenv("SHOP_LAG_HOURS", "6")  # the default lag window catches back-dated updates
        sim.advance(1)
        copy_shop(sim.paths.shop_db, url)
        second = {m.table_name: m for m in load_sources(settings, ["shop_db"])}
        assert 0 < second["orders"].rows_loaded < counts["orders"] + 80
        with psycopg.connect(url) as conn:
            source = set(conn.execute("select order_id, status, updated_at from orders where customer_id is not null"))
        raw = set(wh(settings, latest("raw_shop.orders", "order_id", "order_id, status, updated_at")))
        assert raw == source

        # raw lineage as from any other backend (load id, extraction time, source), and dbt builds on it
        for table in ("customers", "products", "orders", "order_items", "payments"):
            lineage = "count(_dlt_load_id) = count(*) and count(_extracted_at) = count(*) and count(_source) = count(*)"
            assert wh(settings, f"select {lineage} from raw_shop.{table}") == [(True,)], table
            loads = "select load_id from raw_shop._dlt_loads"
            unknown = f"select count(*) from raw_shop.{table} where _dlt_load_id not in ({loads})"
            assert wh(settings, unknown) == [(0,)], table
        load_sources(settings, ["events_api", "marketing_files"])
        done = DbtRunner(settings, detect(settings.project_root)).run(["build", "--quiet"], capture=True)
        assert done.returncode == 0, done.stdout[-3000:]
        assert wh(settings, "select count(*) from main_staging.stg_shop__orders") == [(len(source),)]


def test_scratch_database_urls_keep_credentials_and_parameters() -> None:
    from shopsim.pg import with_database

    url = with_database("postgresql://u:p@db.example:6432/postgres?sslmode=require", "scratch_1")
    assert url == "postgresql://u:p@db.example:6432/scratch_1?sslmode=require"
