"""Regression tests of the issue #10 semantics ("marts must equal the source's truth") in the dbt models.

Every test simulates one day, loads it with the current EL and builds; then it changes the source (or
inserts rows the current EL would reject straight into the raw tables), loads and builds again, and
checks the warehouse. Each one failed before its fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.config import Rates
from tests.python.el_helpers import load_sources, settings_for, wh

pytestmark = pytest.mark.slow


@dataclass
class World:
    settings: Settings
    sim: Simulator
    runner: DbtRunner

    def build(self, *extra: str) -> str:
        """dbt build; the build must succeed. Returns dbt's output."""
        done = self.runner.run(["build", *extra], capture=True)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return done.stdout

    def load_and_build(self, *extra: str) -> str:
        load_sources(self.settings)
        return self.build(*extra)

    def shop(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = sqlite3.connect(self.sim.paths.shop_db)
        try:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def raw(self, sql: str, params: list | None = None) -> None:
        with duckdb.connect(str(self.settings.warehouse)) as conn:
            conn.execute(sql, params or [])

    def q(self, sql: str) -> list[tuple]:
        return wh(self.settings, sql)


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = settings_for(tmp_path)
    rates = Rates(duplicate=0.05, late=0.1, update=0.2, late_update=0.0, restatement=0.0, bad_row=0.05)
    sim = Simulator(settings.sources_root, SimConfig(scale=12, max_late_days=1, drift_day=5, rates=rates))
    sim.advance(1)
    built = World(settings, sim, DbtRunner(settings, detect(settings.project_root)))
    built.load_and_build("--quiet")
    return built


def _day(world: World) -> str:
    return world.sim.current_date().isoformat()


def _an_order(world: World) -> tuple[int, int]:
    """A valid, non-deleted, non-cancelled order of the source that is in fct_orders: (order_id, customer_id)."""
    staged = {order_id for (order_id,) in world.q("select order_id from main_marts.fct_orders where not is_deleted")}
    for order_id, customer_id in world.shop(
        "select order_id, customer_id from orders where status <> 'cancelled' and deleted_at is null "
        "and customer_id is not null order by order_id"
    ):
        if order_id in staged:
            return order_id, customer_id
    raise AssertionError("no order to change")


# 1. back-dated updates ---------------------------------------------------------------------------


def test_back_dated_update_is_the_newest_state(world: World) -> None:
    order_id, _ = _an_order(world)
    day = _day(world)
    world.shop("update orders set status = 'shipped', updated_at = ? where order_id = ?", (f"{day} 23:00:00", order_id))
    world.load_and_build("--quiet")
    assert world.q(f"select order_status from main_marts.fct_orders where order_id = {order_id}") == [("shipped",)]

    world.shop(
        "update orders set status = 'delivered', updated_at = ? where order_id = ?", (f"{day} 22:00:00", order_id)
    )
    world.load_and_build("--quiet")
    assert world.q(f"select order_status from main_marts.fct_orders where order_id = {order_id}") == [("delivered",)]


def test_snapshot_captures_back_dated_changes_but_not_re_extractions(world: World) -> None:
    (customer_id, tier), *_ = world.shop(
        "select customer_id, tier from customers where deleted_at is null order by customer_id"
    )
    new_tier = "platinum" if tier != "platinum" else "bronze"
    day = _day(world)
    world.shop("update customers set updated_at = ? where customer_id = ?", (f"{day} 23:00:00", customer_id))
    world.load_and_build("--quiet")  # re-extracted unchanged (only updated_at moved): no new version
    versions = f"select count(*) from main_snapshots.customers_snapshot where customer_id = {customer_id}"
    assert world.q(versions) == [(1,)]

    world.shop(
        "update customers set tier = ?, updated_at = ? where customer_id = ?",
        (new_tier, f"{day} 22:00:00", customer_id),
    )
    world.load_and_build("--quiet")
    assert world.q(versions) == [(2,)]
    current = world.q(
        f"select customer_tier from main_snapshots.customers_snapshot where customer_id = {customer_id} "
        "and dbt_valid_to is null"
    )
    assert current == [(new_tier,)]

    world.load_and_build("--quiet")  # the lag window extracts the same row again: still two versions
    assert world.q(versions) == [(2,)]


# 2. restated spend files -------------------------------------------------------------------------


def _restate(path: Path, keep: callable) -> list[dict[str, str]]:  # type: ignore[valid-type]
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = [row for row in reader if keep(row)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    later = dt.datetime.now(dt.UTC).timestamp() + 60
    os.utime(path, (later, later))
    return rows


def test_restated_file_without_a_row_removes_it(world: World) -> None:
    path = next(world.sim.paths.marketing_dir.glob("spend_*.csv"))
    kept = _restate(path, lambda row: row["channel"] != "email")
    assert kept, "the restated file still holds rows"
    world.load_and_build("--quiet")
    assert world.q("select count(*) from main_staging.stg_marketing__spend where channel = 'email'") == [(0,)]
    assert world.q("select count(*) from main_marts.fct_marketing_daily where channel = 'email'") == [(0,)]
    incremental = world.q("select * exclude (_watermark) from main_marts.fct_marketing_daily order by all")
    staged = world.q("select * from main_staging.stg_marketing__spend order by all")

    world.build("--quiet", "--full-refresh")
    assert world.q("select * exclude (_watermark) from main_marts.fct_marketing_daily order by all") == incremental
    assert world.q("select * from main_staging.stg_marketing__spend order by all") == staged


# 3. values that do not fit their type ------------------------------------------------------------

EVENT_COLUMNS = (
    "properties, event_id, user_id, session_id, event_type, event_timestamp, received_at, _extracted_at, _source, "
    "_dlt_load_id, _dlt_id"
)


def test_values_that_do_not_fit_go_to_the_rejects_instead_of_failing(world: World) -> None:
    now = "now()"
    # a type-drifted raw layer: text where the EL wrote typed values
    world.raw("alter table raw_events.events alter event_timestamp type varchar")
    world.raw("alter table raw_events.events alter user_id type varchar")
    good_at = f"{_day(world)} 12:00:00+00"
    events = [
        ('{"page": "/p", "product_id": "x12"}', "bad_product", "7", good_at),
        ('{"page": "/p"}', "bad_user", "99999999999999999999", good_at),
        ('{"page": "/p"}', "empty_time", "7", ""),
        ('{"page": "/p"}', "garbage_time", "7", "yesterday-ish"),
        ('{"page": "/p", "value": "lots"}', "bad_value", "7", good_at),
        ('{"page": "/p", "product_id": 5}', "big_user", "3000000000", good_at),
    ]
    for properties, event_id, user_id, at in events:
        world.raw(
            f"insert into raw_events.events ({EVENT_COLUMNS}) values "
            f"(?, ?, ?, 's', 'page_view', ?, '{good_at}'::timestamptz, {now}, 'test', '9999999999.1', ?)",
            [properties, event_id, user_id, at, event_id],
        )
    world.raw(
        "insert into raw_shop.orders (order_id, customer_id, status, currency, ordered_at, created_at, updated_at, "
        "_extracted_at, _source, _dlt_load_id, _dlt_id) values (3000000000, 1, 'placed', 'USD', now(), now(), now(), "
        "now(), 'test', '9999999999.1', 'x')"
    )
    world.raw(
        "insert into raw_marketing.spend (spend_date, channel, campaign, spend, currency, impressions, clicks, "
        "_file_name, _file_line, _file_modified_at, _extracted_at, _source, _dlt_load_id, _dlt_id) values "
        "('not-a-date', 'email', 'newsletter', 1, 'USD', 1, 1, 'bad.csv', 2, now(), now(), 'test', '9999999999.1', 'y')"
    )
    world.build("--quiet")
    world.build("--quiet")  # and every later run too

    assert world.q(
        "select event_id, user_id from main_staging.stg_events__events where event_id in "
        "('bad_product', 'bad_user', 'empty_time', 'garbage_time', 'bad_value', 'big_user')"
    ) == [("big_user", 3_000_000_000)]
    rejects = world.q(
        "select source_table, reason_code, json_extract_string(raw_record, '$.event_id') from main_marts.fct_rejects "
        "where reject_id in (select reject_id from main_staging.stg_events__cast_rejects union all "
        "select reject_id from main_staging.stg_shop__cast_rejects union all "
        "select reject_id from main_staging.stg_marketing__cast_rejects) order by all"
    )
    assert ("events", "type_drift", "bad_product") in rejects
    assert ("events", "out_of_range", "bad_user") in rejects
    assert ("events", "type_drift", "empty_time") in rejects
    assert ("events", "type_drift", "garbage_time") in rejects
    assert ("events", "type_drift", "bad_value") in rejects
    assert ("orders", "out_of_range", None) in rejects
    assert ("spend", "type_drift", None) in rejects
    assert world.q("select count(*) from main_staging.stg_shop__orders where order_id is null") == [(0,)]


# 4. rejects deduplicated -------------------------------------------------------------------------


def test_re_extracted_rejects_count_once(world: World) -> None:
    before = world.q("select count(*) from main_marts.fct_rejects")[0][0]
    raw = world.q("select count(*) from raw_shop.rejects")[0][0]
    assert before > 0 and raw > 0
    # what every re-extraction does: the same bad rows appended again, later
    world.raw(
        "insert into raw_shop.rejects "
        "select * replace (_extracted_at + interval 1 day as _extracted_at) from raw_shop.rejects"
    )
    world.build("--quiet", "--select", "+fct_rejects")
    assert world.q("select count(*) from main_marts.fct_rejects") == [(before,)]
    assert world.q("select count(*), count(distinct reject_id) from main_marts.fct_rejects") == [
        (world.q("select count(*) from main_marts.fct_rejects")[0][0],) * 2
    ]
    doubled = world.q(
        "select min(times_extracted), bool_and(last_extracted_at > first_extracted_at) "
        "from main_marts.fct_rejects where reject_id in (select reject_id from main_staging.stg_shop__rejects)"
    )
    assert doubled == [(2, True)]
    columns = world.q(
        "select column_name from information_schema.columns where table_schema = 'main_marts' "
        "and table_name = 'fct_rejects' order by ordinal_position"
    )
    assert [c for (c,) in columns] == [
        "reject_id", "source_name", "source_table", "reason_code", "reason", "raw_record", "source_location",
        "first_extracted_at", "last_extracted_at", "times_extracted",
    ]  # fmt: skip


# 5. children of quarantined parents --------------------------------------------------------------


def test_children_of_quarantined_orders_are_rejects_not_orphans(world: World) -> None:
    day = _day(world)
    order_id, _ = _an_order(world)
    # the order breaks the contract from now on (null customer): el/ quarantines it, its lines stay
    world.raw(f"delete from main_staging.stg_shop__orders where order_id = {order_id}")  # as if never valid
    world.shop("update orders set customer_id = null, updated_at = ? where order_id = ?", (f"{day} 23:30:00", order_id))
    world.build("--quiet", "--full-refresh")
    load_sources(world.settings)
    world.raw(f"delete from raw_shop.orders where order_id = {order_id}")  # only the quarantined version is left
    output = world.build("--full-refresh")
    lines = world.q(f"select count(*) from main_staging.stg_shop__order_items where order_id = {order_id}")[0][0]
    assert lines > 0
    listed = world.q(
        "select count(*) from main_marts.fct_rejects where reason_code = 'parent_quarantined' "
        f"and reason = 'parent orders row {order_id} is quarantined'"
    )[0][0]
    assert listed >= lines
    assert world.q(f"select count(*) from main_marts.fct_order_items where order_id = {order_id}") == [(0,)]
    orphan_warnings = [
        line for line in output.splitlines() if "relationships_excluding" in line and ("WARN" in line or "FAIL" in line)
    ]
    assert orphan_warnings == [], orphan_warnings


# 7. a new enum value ----------------------------------------------------------------------------


def test_returned_order_flows_into_the_marts_with_a_warning(world: World) -> None:
    order_id, _ = _an_order(world)
    world.shop(
        "update orders set status = 'returned', updated_at = ? where order_id = ?",
        (f"{_day(world)} 23:00:00", order_id),
    )
    output = world.load_and_build()  # exits 0
    assert "accepted_values" in output and "WARN" in output
    assert world.q(f"select order_status from main_marts.fct_orders where order_id = {order_id}") == [("returned",)]
    (date, amount) = world.q(f"select order_date, order_amount from main_marts.fct_orders where order_id = {order_id}")[
        0
    ]
    expected = world.q(
        f"select sum(order_amount) from main_marts.fct_orders where order_date = '{date}' "
        "and not is_cancelled and not is_deleted"
    )[0][0]
    assert world.q(f"select net_revenue from main_marts.fct_daily_revenue where revenue_date = '{date}'") == [
        (expected,)
    ]
    assert amount > 0


# 8. deleted orders count in no aggregate ---------------------------------------------------------


def test_deleted_order_counts_in_no_aggregate(world: World) -> None:
    order_id, customer_id = _an_order(world)
    date = world.q(f"select order_date from main_marts.fct_orders where order_id = {order_id}")[0][0]
    items = f"select is_deleted from main_marts.fct_order_items where order_id = {order_id}"
    before = world.q(items)
    world.shop(
        "update orders set deleted_at = ?, updated_at = ? where order_id = ?",
        (f"{_day(world)} 23:00:00", f"{_day(world)} 23:00:00", order_id),
    )
    world.load_and_build("--quiet")
    assert world.q(f"select is_deleted from main_marts.fct_orders where order_id = {order_id}") == [(True,)]
    assert world.q(items) == [(True,)] * len(before)  # every item kept, flagged with its order
    live = "from main_marts.fct_orders where not is_deleted"
    checks = world.q(
        "with expected as ("
        "select count(*) as placed, count(distinct customer_id) as customers, sum(order_amount) as gross, "
        "sum(case when not is_cancelled then order_amount else 0 end) as net, "
        "count(*) filter (not is_cancelled) as kept "
        f"{live} and order_date = '{date}') "
        "select orders_placed = placed, daily.customers = expected.customers, gross_revenue = gross, "
        "net_revenue = net, average_order_value = cast(net / nullif(kept, 0) as decimal(14, 2)) "
        f"from main_marts.fct_daily_revenue as daily, expected where revenue_date = '{date}'"
    )
    assert checks == [(True, True, True, True, True)]
    customer = world.q(f"select lifetime_orders from main_marts.dim_customers where customer_id = {customer_id}")
    assert customer == world.q(f"select count(*) {live} and customer_id = {customer_id}")
    features = world.q(
        f"select lifetime_orders from main_marts.fct_customer_features where customer_id = {customer_id}"
    )
    assert features == customer  # a row per live customer, its lifetime orders without the deleted one
    as_of = world.q("select max(as_of_date) from main_marts.fct_customer_features")
    assert as_of == world.q(f"select max(order_date) {live}")
