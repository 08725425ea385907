"""End to end over several simulated days: incremental dbt builds equal a --full-refresh build.

Duplicates, updates, back-dated updates, restated spend files and events arriving later than
`lookback_days` all occur; every staging model and mart must match the full rebuild row for row.
"""

from __future__ import annotations

import sqlite3

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import detect
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import BATCH_MARTS, load_sources, settings_for, wh

pytestmark = pytest.mark.slow

LOOKBACK_DAYS = 1
DAYS = 6
STAGING = [
    "stg_shop__customers",
    "stg_shop__products",
    "stg_shop__orders",
    "stg_shop__order_items",
    "stg_shop__payments",
    "stg_events__events",
    "stg_marketing__spend",
]
INTERMEDIATE = ["int_events__sessionized"]  # incremental too: sessions resume per touched user
IGNORED = {"_watermark"}  # build bookkeeping, not content


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, table],
    ).fetchall()
    return ", ".join(f'"{name}"' for (name,) in rows if name not in IGNORED)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("e2e")
    settings = settings_for(tmp)
    rates = Rates(duplicate=0.1, late=0.25, update=0.3, late_update=0.2, restatement=0.5, bad_row=0.03)
    sim = Simulator(settings.sources_root, SimConfig(scale=40, max_late_days=5, drift_day=2, rates=rates))
    runner = DbtRunner(settings, detect(settings.project_root))
    variables = {"lookback_days": LOOKBACK_DAYS}
    for _ in range(DAYS):
        sim.advance(1)
        load_sources(settings)
        done = runner.run(["build", "--quiet"], variables, capture=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # a backfill over every simulated day (`el run --from/--to`) builds (unit tests included) and
    # recomputes dates without changing them: the comparison below covers it too
    backfill = {"backfill_from": sim.config.start_date.isoformat(), "backfill_to": str(sim.current_date())}
    done = runner.run(["build", "--quiet"], {**variables, **backfill}, capture=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("create schema if not exists incremental_copy")
        layers = (("main_staging", STAGING), ("main_intermediate", INTERMEDIATE), ("main_marts", BATCH_MARTS))
        for schema, models in layers:
            for model in models:
                conn.execute(f"create table incremental_copy.{model} as select * from {schema}.{model}")
    done = runner.run(["build", "--full-refresh", "--quiet"], variables, capture=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return settings, sim


@pytest.mark.parametrize("model", [*STAGING, *INTERMEDIATE, *BATCH_MARTS])
def test_incremental_equals_full_refresh(built, model: str) -> None:
    settings, _ = built
    schema = {**dict.fromkeys(STAGING, "main_staging"), **dict.fromkeys(INTERMEDIATE, "main_intermediate")}.get(
        model, "main_marts"
    )
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        columns = _columns(conn, schema, model)
        full = conn.execute(f"select count(*) from {schema}.{model}").fetchone()[0]
        missing = conn.execute(
            f"select count(*) from (select {columns} from {schema}.{model} "
            f"except all select {columns} from incremental_copy.{model})"
        ).fetchone()[0]
        extra = conn.execute(
            f"select count(*) from (select {columns} from incremental_copy.{model} "
            f"except all select {columns} from {schema}.{model})"
        ).fetchone()[0]
    assert full > 0
    assert (missing, extra) == (0, 0), f"{model}: {missing} rows only in full refresh, {extra} only incremental"


def test_events_later_than_lookback_were_part_of_the_run(built) -> None:
    settings, _ = built
    (late,) = wh(
        settings,
        f"select count(*) from main_staging.stg_events__events "
        f"where cast(received_at as date) - event_date > {LOOKBACK_DAYS}",
    )[0]
    assert late > 0, "the scenario must contain events later than lookback_days"


def _source(sim: Simulator, sql: str) -> float:
    conn = sqlite3.connect(sim.paths.shop_db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_revenue_mart_matches_the_source_database(built) -> None:
    settings, sim = built
    expected = _source(
        sim,
        "select round(sum(i.quantity * i.unit_price), 2) from orders o join order_items i using (order_id) "
        "where o.customer_id is not null and typeof(i.quantity) = 'integer' "
        "and o.status <> 'cancelled' and o.deleted_at is null",
    )
    (actual,) = wh(settings, "select sum(net_revenue) from main_marts.fct_daily_revenue")[0]
    assert float(actual) == pytest.approx(expected, abs=0.01)
    # deleted orders count in no aggregate
    orders = _source(sim, "select count(*) from orders where customer_id is not null and deleted_at is null")
    assert wh(settings, "select sum(orders_placed) from main_marts.fct_daily_revenue")[0][0] == orders


def test_restated_spend_wins_in_the_marketing_mart(built) -> None:
    settings, sim = built
    import csv

    expected = 0.0
    for path in sim.paths.marketing_dir.iterdir():
        with path.open() as handle:
            for row in csv.DictReader(handle):
                try:
                    spend = float(row["spend"])
                except ValueError:
                    continue
                if row["channel"] and spend >= 0:
                    expected += spend
    (actual,) = wh(settings, "select sum(spend_amount) from main_marts.fct_marketing_daily")[0]
    assert float(actual) == pytest.approx(expected, abs=0.05)


def test_every_reject_is_visible_once_in_the_rejects_mart(built) -> None:
    settings, _ = built
    distinct = " union all ".join(
        f"select source, source_table, reason, record, count(*) as n from raw_{schema}.rejects group by all"
        for schema in ("shop", "events", "marketing")
    )
    raw = wh(settings, f"select count(*), sum(n) from ({distinct})")[0]
    assert raw[0] > 0
    mart = wh(
        settings,
        "select count(*), sum(times_extracted), count(distinct reject_id) from main_marts.fct_rejects "
        "where reject_id in (select reject_id from main_staging.stg_shop__rejects union all select reject_id "
        "from main_staging.stg_events__rejects union all select reject_id from main_staging.stg_marketing__rejects)",
    )[0]
    assert mart == (raw[0], raw[1], raw[0])


def test_snapshots_keep_history(built) -> None:
    settings, _ = built
    versions = wh(
        settings,
        "select count(*) from main_snapshots.customers_snapshot where dbt_valid_to is not null",
    )[0][0]
    current = wh(settings, "select count(*) from main_snapshots.customers_snapshot where dbt_valid_to is null")[0][0]
    assert versions > 0
    assert current == wh(settings, "select count(*) from main_staging.stg_shop__customers")[0][0]


def test_schema_drift_columns_arrived(built) -> None:
    settings, _ = built
    filled = wh(
        settings,
        "select count(loyalty_points), (select count(app_version) from main_staging.stg_events__events), "
        "(select count(conversions) from main_staging.stg_marketing__spend) from main_staging.stg_shop__customers",
    )[0]
    assert all(value > 0 for value in filled)
