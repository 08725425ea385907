"""No single value fails a load (typed contracts), spend files tracked by name + content hash."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from el.contracts import SPEND_CONTRACT, as_timestamp
from el.sources.file_drops import read_rows
from el.sources.shop_db import RawValue, sqlite_cursor_query
from shopsim import SimConfig, Simulator
from tests.python.el_helpers import api_time, latest, load_sources, serve_pages, settings_for, src, wh


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = settings_for(tmp_path)
    for name in ("SHOP_DB_URL", "SHOP_EVENTS_URL", "SHOP_FILES_DIR", "SHOP_LAG_HOURS", "SHOP_EVENTS_LAG_HOURS"):
        monkeypatch.delenv(name, raising=False)
    sim = Simulator(settings.sources_root, SimConfig(scale=20))
    sim.advance(1)
    return settings, sim


def _rejects(settings, dataset: str) -> dict[str, str]:
    rows = wh(settings, f"select reason_code, reason from {dataset}.rejects order by reason")
    return {reason: code for code, reason in rows}


def test_single_bad_shop_values_are_rejects_not_failed_loads(demo) -> None:
    settings, sim = demo
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:
        conn.execute("update payments set amount = 'abc' where payment_id = (select min(payment_id) from payments)")
        conn.execute("update orders set ordered_at = 'not-a-date' where order_id = (select min(order_id) from orders)")
        conn.execute("update orders set customer_id = 'C-0012' where order_id = (select max(order_id) from orders)")
        conn.execute("update order_items set unit_price = 1e15 where order_item_id = 1")
        conn.execute("update order_items set quantity = 99999999999999999999 where order_item_id = 2")
    conn.close()
    metrics = load_sources(settings, ["shop_db"])
    assert {m.status for m in metrics} == {"ok"}
    reasons = _rejects(settings, "raw_shop")
    expected = {
        "type_drift": ["amount='abc' is not a number", "ordered_at='not-a-date' is not a timestamp",
                       "customer_id='C-0012' is not an integer"],
        "out_of_range": ["unit_price=1000000000000000 does not fit numeric(12,2)",
                         "quantity=1e+20 does not fit a 64-bit integer"],
    }  # fmt: skip
    for code, fragments in expected.items():
        for fragment in fragments:
            hits = [r for r, c in reasons.items() if fragment in r]
            assert hits and reasons[hits[0]] == code, (fragment, reasons)
    order_reason = next(r for r in reasons if "C-0012" in r)
    assert "shop_db.orders order_id=" in order_reason, "the reason names the table and the row key"
    # the raw column types stay the declared ones
    types = dict(wh(settings, "select column_name, data_type from information_schema.columns "
                              "where table_schema = 'raw_shop' and table_name = 'order_items'"))  # fmt: skip
    assert types["unit_price"] == "DECIMAL(12,2)" and types["quantity"] == "BIGINT"
    assert types["updated_at"] == "TIMESTAMP"


def test_an_updated_at_with_a_utc_offset_is_read_as_utc_not_a_failed_table(demo) -> None:
    """SQLite keeps timestamps as text: one `updated_at` with an offset among naive ones (read as UTC) used to
    stop the table's every extract (dlt's cursor compared an aware with a naive datetime)."""
    settings, sim = demo
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:
        (customer, stamp) = conn.execute(
            "select customer_id, updated_at from customers order by updated_at desc limit 1"
        ).fetchone()
        local = dt.datetime.fromisoformat(stamp) + dt.timedelta(hours=2)
        conn.execute(
            "update customers set updated_at = ? where customer_id = ?", (f"{local.isoformat()}+02:00", customer)
        )
    conn.close()
    metrics = load_sources(settings, ["shop_db"])
    assert [m.status for m in metrics if m.table_name == "customers"] == ["ok"]
    (total,) = src(sim.paths.shop_db, "select count(*) from customers")[0]
    assert wh(settings, "select count(*) from raw_shop.customers") == [(total,)]
    landed = wh(settings, f"select updated_at from raw_shop.customers where customer_id = {customer}")
    assert landed == [(dt.datetime.fromisoformat(stamp),)], "the offset value, in UTC"


def test_sqlite_cursor_values_that_sort_before_the_cursor_as_text_are_read(demo) -> None:
    """dlt filters the cursor in SQL, and SQLite compared `updated_at >= :cursor` as text: a later update
    written with a local time more than the lag before sorted below the cursor, and a number or an
    impossible date below any text, so those rows were never read - neither loaded nor quarantined."""
    settings, sim = demo
    load_sources(settings, ["shop_db"])
    (last,) = src(sim.paths.shop_db, "select max(updated_at) from customers")[0]
    later = dt.datetime.fromisoformat(last) + dt.timedelta(minutes=1)
    hawaii = f"{(later - dt.timedelta(hours=10)).isoformat(sep=' ')}-10:00"  # the instant `later`
    lagged = (dt.datetime.fromisoformat(last) - dt.timedelta(hours=6)).isoformat(sep=" ")
    assert hawaii < lagged, "as text, before the cursor less its 6 h lag"
    first, *others = (row[0] for row in src(sim.paths.shop_db, "select customer_id from customers "
                                                               "order by customer_id limit 5"))  # fmt: skip
    stored = {  # customer -> an updated_at that SQLite sorts before the cursor, and its reject code
        others[0]: (1733400000, "type_drift"),
        others[1]: ("2020-02-30 10:00:00.000000", "type_drift"),
        others[2]: ("2020-01-01 10:00:00\x00junk", "type_drift"),  # SQLite's glob stops at the NUL
        others[3]: ("0001-01-01 00:00:00+05:00", "out_of_range"),  # no time in UTC: failed the extract
    }
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:
        conn.execute("update customers set updated_at = ?, first_name = 'Kai' where customer_id = ?",
                     (hawaii, first))  # fmt: skip
        for customer, (value, _) in stored.items():
            conn.execute("update customers set updated_at = ? where customer_id = ?", (value, customer))
    conn.close()
    assert {m.status for m in load_sources(settings, ["shop_db"])} == {"ok"}
    versions = latest("raw_shop.customers", "customer_id", "customer_id, updated_at, first_name")
    newest = wh(settings, f"select * from ({versions}) where customer_id = {first}")
    assert newest == [(first, later, "Kai")], "the update landed, its updated_at in UTC"
    rejects = [(code, json.loads(record)) for code, record in wh(settings, "select reason_code, record "
                                                                          "from raw_shop.rejects")]  # fmt: skip
    kept = {r["customer_id"]: (r["updated_at"], code) for code, r in rejects if r.get("customer_id") in stored}
    assert kept == stored, "rejected with the values the source holds"


CURSOR_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="0123456789-: T.Z+zx\x00\u0661", max_size=32),
    st.builds(
        lambda moment, sep, digits, suffix: moment.isoformat(sep=sep)[: 19 + digits] + suffix,
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
        st.sampled_from([" ", "T"]),
        st.sampled_from([0, 0, 2, 4, 7]),
        st.sampled_from(["", "", "Z", "+00:00", "-10:00", "+14:00", " ", "x", "\x00", "\x00x"]),
    ),
    st.sampled_from(["2020-02-30 10:00:00", "2020-01-01 24:00:00", "0000-01-01 10:00:00", "2020-13-01 10:00:00",
                     "2020-01-01 10:00:00.", " 2020-01-01 10:00:00", "2461000.5", b"2020-01-01 10:00:00"]),
)  # fmt: skip


def _read_by_sqlite_cursor_query(values: list[Any], cursor: dt.datetime) -> set[int]:
    """The positions of `values` (stored as given in a SQLite DATETIME column) the query reads."""
    table = sa.Table("customers", sa.MetaData(), sa.Column("customer_id", sa.Integer),
                     sa.Column("updated_at", RawValue(sa.DateTime())))  # fmt: skip
    query = sqlite_cursor_query(table.select(), table, types.SimpleNamespace(last_value=cursor))
    with sa.create_engine("sqlite://").begin() as conn:
        conn.exec_driver_sql("create table customers (customer_id integer, updated_at datetime)")
        for key, value in enumerate(values):
            conn.exec_driver_sql("insert into customers values (?, ?)", (key, value))
        return {row.customer_id for row in conn.execute(query)}


@examples(max_examples=300, deadline=None)
@given(st.lists(CURSOR_VALUES, max_size=12), st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30)))
def test_sqlite_cursor_query_leaves_out_only_values_python_reads_as_before_the_cursor(
    values: list[Any], cursor: dt.datetime
) -> None:
    """The oracle is Python's own reading (what dlt's incremental and the contract see): a row the SQL
    leaves out must hold a timestamp Python reads as earlier than the cursor's second - never a value
    Python cannot read (a reject) nor a later instant (an update)."""
    read = _read_by_sqlite_cursor_query(values, cursor)
    for key, value in enumerate(values):
        if key not in read:
            stamp = as_timestamp(value)
            assert stamp is not None and stamp.tzinfo is None and stamp < cursor.replace(microsecond=0), value


def test_sqlite_cursor_query_reads_what_it_must() -> None:
    """And it does filter: the usual rows before the cursor's second are left out, the others read."""
    values = ["2026-01-10 11:59:59.999999", "2026-01-09 10:00:00.000000", "2026-01-10 12:00:00.000000",
              "2026-01-10 12:00:00.000501", "2026-01-09 23:00:00-10:00", "2026-01-11 00:00:00.000000"]  # fmt: skip
    assert _read_by_sqlite_cursor_query(values, dt.datetime(2026, 1, 10, 12, 0, 0, 500)) == {2, 3, 4, 5}


def test_declared_type_change_in_sqlite_is_a_reject_and_the_next_load_works(demo) -> None:
    settings, sim = demo
    load_sources(settings, ["shop_db"])
    conn = sqlite3.connect(sim.paths.shop_db)
    with conn:  # the source re-creates orders with customer_id declared TEXT
        conn.execute("alter table orders rename column customer_id to customer_id_old")
        conn.execute("alter table orders add column customer_id text")
        conn.execute("update orders set customer_id = cast(customer_id_old as text), "
                     "updated_at = '2030-01-01 00:00:00.000000'")  # fmt: skip
        conn.execute("update orders set customer_id = 'C-0012' where order_id = (select min(order_id) from orders)")
    conn.close()
    assert {m.status for m in load_sources(settings, ["shop_db"])} == {"ok"}
    assert wh(settings, "select data_type from information_schema.columns where table_schema = 'raw_shop' "
                        "and table_name = 'orders' and column_name = 'customer_id'") == [("BIGINT",)]  # fmt: skip
    assert any("C-0012" in r for r in _rejects(settings, "raw_shop"))


def test_spend_values_beyond_numeric_and_int64_are_rejects(demo) -> None:
    settings, sim = demo
    path = next(sim.paths.marketing_dir.glob("spend_*.csv"))
    lines = path.read_text().splitlines()
    head = lines[0].split(",")
    first = lines[1].split(",")
    first[head.index("spend")] = "100000000000000000000.00"
    second = lines[2].split(",")
    second[head.index("impressions")] = "99999999999999999999"
    path.write_text("\n".join([lines[0], ",".join(first), ",".join(second), *lines[3:]]) + "\n")
    assert {m.status for m in load_sources(settings, ["marketing_files"])} == {"ok"}
    codes = wh(settings, "select reason_code, count(*) from raw_marketing.rejects group by 1")
    assert dict(codes) == {"out_of_range": 2}
    assert wh(settings, "select count(*) from raw_marketing.spend")[0][0] == len(lines) - 3


def test_spend_lines_the_header_cannot_split_are_rejects_with_every_field(demo) -> None:
    """A line with more fields than the header (an unquoted comma) lost the fields past it, and one with
    fewer (a file cut short) loaded its missing fields as null; both are `malformed_CSV` rejects now. Empty
    fields that are there are not missing, and a UTF-8 byte order mark (Excel's "CSV UTF-8") is no part of
    the first column's name (it made the whole file a `bad_file`)."""
    settings, sim = demo
    for old in sim.paths.marketing_dir.glob("spend_*.csv"):
        old.unlink()
    lines = [
        "spend_date,channel,campaign,spend,currency,impressions,clicks",
        "2026-01-05,search,brand,10.00,EUR,100,5",
        "2026-01-05,social,Spring, Sale,20.00,EUR,200,7",
        "2026-01-05,email,news,30.00,EUR,,",
        "2026-01-05,display,retarget,12",
    ]
    drop = sim.paths.marketing_dir / "spend_2026-01-05.csv"
    drop.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert {m.status for m in load_sources(settings, ["marketing_files"])} == {"ok"}
    loaded = wh(settings, "select channel, spend, impressions, _file_line from raw_marketing.spend order by 4")
    assert loaded == [("search", Decimal("10.00"), 100, 2), ("email", Decimal("30.00"), None, 4)]
    rejects = wh(settings, "select reason_code, reason, record from raw_marketing.rejects order by reason")
    assert [(code, reason.split(" (")[0]) for code, reason, _ in rejects] == [
        ("malformed_CSV", "malformed CSV: line 3 has 8 fields, the header 7"),
        ("malformed_CSV", "malformed CSV: line 5 has 4 fields, the header 7"),
    ]
    spring, cut = (json.loads(record) for _, _, record in rejects)
    assert (spring["campaign"], spring["spend"], spring["_extra_fields"]) == ("Spring", " Sale", ["7"])
    assert (cut["spend"], cut["currency"], cut["clicks"]) == ("12", None, None)


def test_spend_reader_counts_fields_and_lines_as_written() -> None:
    """An empty field after the last column (a trailing comma) loses nothing and is no defect; lines are
    the file's own (a blank line, a quoted line break); a header naming a column twice, or a quote that
    swallows the rest of the file (csv's field limit), makes the file a `bad_file`, not a failed load."""
    now = dt.datetime.now(dt.UTC)
    header = "spend_date,channel,campaign,spend\n"
    text = header + '2026-01-05,a,b,1.00,\n\n2026-01-05,a,"x\ny",2.00\n2026-01-05,a,b,3.00,4\n'
    rows = read_rows("f.csv", text.encode(), "h", now)
    assert [(r["_file_line"], r["spend"], SPEND_CONTRACT.violation(r)) for r in rows] == [
        (2, "1.00", None),
        (4, "2.00", None),
        (6, "3.00", "malformed CSV: line 6 has 5 fields, the header 4"),
    ]
    twice = read_rows("f.csv", b"spend_date,channel,campaign,spend,spend\n2026-01-05,a,b,1,2\n", "h", now)
    assert [SPEND_CONTRACT.violation(r) for r in twice] == ["bad file: f.csv: header has column 'spend' more than once"]
    runaway = read_rows("f.csv", (header + '2026-01-05,a,"b,' + "x" * 200_000 + "\n").encode(), "h", now)
    assert [SPEND_CONTRACT.violation(r) for r in runaway] == [
        "bad file: f.csv: not readable as CSV at line 2: field larger than field limit (131072)"
    ]


def _add_event(sim: Simulator, event_id: str, user_id: str, happened: str, properties: str = "{}") -> None:
    conn = sqlite3.connect(sim.paths.events_db)
    with conn:
        (received,) = conn.execute("select max(received_at) from events where defect is null and received_at <= "
                                   "(select value from meta where key = 'served_until')").fetchone()  # fmt: skip
        conn.execute(
            "insert into events (event_id, user_id, session_id, event_type, event_timestamp, received_at, properties)"
            " values (?, ?, 's', 'page_view', ?, ?, ?)",
            (event_id, user_id, happened or received, received, properties),
        )
    conn.close()


def test_bad_event_values_and_implausible_times_are_rejects(demo) -> None:
    settings, sim = demo
    _add_event(sim, "e-big-user", "3000000000000000000000", "")
    _add_event(sim, "e-bad-time", "7", "yesterday-ish")
    _add_event(sim, "e-ancient", "7", "2001-01-01 00:00:00.000000")
    _add_event(sim, "e-future", "7", "2099-01-01 00:00:00.000000")
    _add_event(sim, "e-product", "7", "", json.dumps({"product_id": "abc"}))
    _add_event(sim, "e-value", "7", "", json.dumps({"value": "lots"}))
    assert {m.status for m in load_sources(settings, ["events_api"])} == {"ok"}
    rows = wh(settings, "select reason_code, reason from raw_events.rejects where reason like '%e-%'")
    by_event = {reason.split("event_id='")[1].split("'")[0]: code for code, reason in rows}
    assert by_event == {
        "e-big-user": "out_of_range",
        "e-bad-time": "type_drift",
        "e-ancient": "out_of_range",
        "e-future": "out_of_range",
        "e-product": "type_drift",
        "e-value": "type_drift",
    }


def test_event_plausible_range_is_configurable(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sim = demo
    monkeypatch.setenv("SHOP_EVENTS_MAX_LATENESS_DAYS", "100000")
    _add_event(sim, "e-ancient", "7", "2001-01-01 00:00:00.000000")
    load_sources(settings, ["events_api"])
    assert wh(settings, "select count(*) from raw_events.events where event_id = 'e-ancient'") == [(1,)]


def _event(event_id: str, received_at: object, happened: str | None = None) -> dict[str, Any]:
    event = {"event_id": event_id, "user_id": 7, "session_id": "s", "event_type": "page_view",
             "event_timestamp": happened or received_at, "received_at": received_at, "properties": {}}  # fmt: skip
    if received_at == "absent":
        del event["received_at"]
    return event


def test_unusable_received_at_is_a_reject_and_never_the_cursor(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """received_at is the events cursor, and dlt's incremental sees each row before the contract does. A row
    whose received_at the cursor must not take - null, absent, blank, not a timestamp, after the extraction
    (plus the clock skew) - is quarantined with its own value, the fit rows land, and the next load takes
    the events received since (before: a null failed every load, a blank vanished, a word or a future time
    became the cursor and the next load failed or skipped everything before it)."""
    settings, _ = demo
    now = dt.datetime.now(dt.UTC)
    stamp, later, future = (api_time(now + dt.timedelta(hours=h)) for h in (-2, -1, 30 * 24))
    events = [
        _event("e-fit-1", stamp),
        _event("e-null", None, stamp),
        _event("e-absent", "absent", stamp),
        _event("e-blank", "", stamp),
        _event("e-word", "yesterday", stamp),
        _event("e-future", future),
        _event("e-year-one", "0001-01-01T00:00:00+01:00"),  # sorts below the cursor's first value
        _event("e-fit-2", stamp),
    ]
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    # one page, the list as it is at each request (the demo API cannot serve these rows: it selects and
    # orders by received_at in SQL)
    with serve_pages(lambda _query: {"data": events, "next_cursor": None}) as url:
        monkeypatch.setenv("SHOP_EVENTS_URL", url)
        assert [m.status for m in load_sources(settings, ["events_api"])] == ["ok"]
        rows = wh(settings, "select reason_code, record from raw_events.rejects")
        rejected = {json.loads(record)["event_id"]: (code, json.loads(record).get("received_at", "absent"))
                    for code, record in rows}  # fmt: skip
        assert rejected == {
            "e-null": ("null_key", None),
            "e-absent": ("null_key", "absent"),
            "e-blank": ("null_key", ""),
            "e-word": ("type_drift", "yesterday"),
            "e-future": ("out_of_range", future),
            "e-year-one": ("out_of_range", "0001-01-01T00:00:00+01:00"),
        }
        assert wh(settings, "select event_id from raw_events.events order by 1") == [("e-fit-1",), ("e-fit-2",)]
        # the next load: a new event, the old ones served again; the cursor is the fit rows' received_at
        events[:] = [_event("e-fit-1", stamp), _event("e-fit-2", stamp), _event("e-fit-3", later)]
        assert [m.status for m in load_sources(settings, ["events_api"])] == ["ok"]
    assert wh(settings, "select event_id, count(*) from raw_events.events group by 1 order by 1") == [
        ("e-fit-1", 1), ("e-fit-2", 1), ("e-fit-3", 1)
    ]  # fmt: skip
    assert wh(settings, "select count(*) from raw_events.rejects") == [(6,)]


def test_received_at_in_another_iso_form_is_taken_by_its_instant(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt's incremental compares the cursor's values as they are, text with text. A received_at written in
    another ISO form than the API's usual one sorted by its characters, not by its instant: a leading blank
    sorted before 1970 and the row vanished, and a past time in a +14:00 offset or in ISO's basic form
    sorted after every usual one, became the cursor, and the next load skipped the events received before
    it. The cursor now sees each value's instant in one form (the row keeps its own text), so every served
    event lands once and the next load takes the events received since."""
    settings, _ = demo
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    far_east = dt.timezone(dt.timedelta(hours=14))
    forms = {
        "e-usual": api_time(now - dt.timedelta(minutes=120)),
        "e-blank-first": " " + api_time(now - dt.timedelta(minutes=115)),
        "e-space": (now - dt.timedelta(minutes=110)).strftime("%Y-%m-%d %H:%M:%S.%fZ"),
        "e-basic": (now - dt.timedelta(minutes=100)).strftime("%Y%m%dT%H%M%SZ"),
        "e-far-east": (now - dt.timedelta(minutes=90)).astimezone(far_east).isoformat(),
    }
    events = [_event(event_id, received_at) for event_id, received_at in forms.items()]
    # rejected for its user_id: its record keeps the received_at the API sent
    bad_user = {**_event("e-bad-user", forms["e-far-east"]), "user_id": "u-7"}
    events.append(bad_user)
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    with serve_pages(lambda _query: {"data": events, "next_cursor": None}) as url:
        monkeypatch.setenv("SHOP_EVENTS_URL", url)
        assert [m.status for m in load_sources(settings, ["events_api"])] == ["ok"]
        landed = {event_id for (event_id,) in wh(settings, "select event_id from raw_events.events")}
        rejects = [json.loads(record) for (record,) in wh(settings, "select record from raw_events.rejects")]
        assert landed == set(forms)  # every form is a timestamp within the window: all fit
        assert rejects == [bad_user]  # as sent: the API's own received_at, nothing of the cursor's
        columns = wh(settings, "select column_name from information_schema.columns where table_name = 'events' "
                               "and table_schema = 'raw_events' and column_name like '%set_aside%'")  # fmt: skip
        assert columns == []
        # each row keeps its own instant
        stored = dict(wh(settings, "select event_id, cast(received_at as timestamptz) from raw_events.events"))
        assert {k: v.astimezone(dt.UTC) for k, v in stored.items()} == {
            k: dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00")).astimezone(dt.UTC) for k, v in forms.items()
        }
        # the next load: the same rows again and one received after all of them, in the usual form
        events.append(_event("e-next", api_time(now - dt.timedelta(minutes=60))))
        assert [m.status for m in load_sources(settings, ["events_api"])] == ["ok"]
    assert wh(settings, "select event_id, count(*) from raw_events.events group by 1 order by 1") == sorted(
        (event_id, 1) for event_id in [*forms, "e-next"]
    )
    assert wh(settings, "select count(*) from raw_events.rejects") == [(1,)]  # e-bad-user, once


def test_events_received_while_a_long_extract_pages_are_fit(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The received_at limit (the API cannot have received an event later than now plus the clock skew) is
    read as the extract goes, not fixed at its start: an extract that pages for longer than the skew (a first
    load of a long history) takes the events the API received meanwhile instead of quarantining them as
    out_of_range, from where the next load took them again (both in raw and in rejects). Skew 0 here stands
    for a long extract; an event received in the future is still rejected."""
    settings, _ = demo
    monkeypatch.setenv("SHOP_EVENTS_MAX_CLOCK_SKEW_MINUTES", "0")
    monkeypatch.setenv("SHOP_EVENTS_LAG_HOURS", "0")
    pages = 3

    def live(query: dict[str, str]) -> dict[str, Any]:
        page = int(query.get("cursor", "0"))
        time.sleep(0.1)  # the API receives events between two pages
        received = api_time(dt.datetime.now(dt.UTC))
        data = [_event(f"e-{page}-{n}", received) for n in range(5)]
        if page == 1:
            future = api_time(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
            data.append(_event("e-future", future))
        return {"data": data, "next_cursor": str(page + 1) if page + 1 < pages else None}

    with serve_pages(live) as url:
        monkeypatch.setenv("SHOP_EVENTS_URL", url)
        assert [m.status for m in load_sources(settings, ["events_api"])] == ["ok"]
    landed = {event_id for (event_id,) in wh(settings, "select event_id from raw_events.events")}
    assert landed == {f"e-{page}-{n}" for page in range(pages) for n in range(5)}
    rejects = [(json.loads(record)["event_id"], code) for code, record in
               wh(settings, "select reason_code, record from raw_events.rejects")]  # fmt: skip
    assert rejects == [("e-future", "out_of_range")]


# --- spend files: tracked by name + content hash -------------------------------------------------------------


def _spend(settings, name: str) -> list[tuple]:
    return wh(settings, f"select count(*), count(distinct _file_hash) from raw_marketing.spend "
                        f"where _file_name = '{name}'")  # fmt: skip


def test_new_file_with_old_mtime_is_loaded_and_unchanged_file_is_not(demo) -> None:
    settings, sim = demo
    load_sources(settings, ["marketing_files"])
    before = wh(settings, "select count(*) from raw_marketing.spend")[0][0]
    source = next(sim.paths.marketing_dir.glob("spend_*.csv"))
    copy = sim.paths.marketing_dir / "spend_2025-12-31.csv"
    copy.write_bytes(source.read_bytes())
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()
    os.utime(copy, (old, old))  # cp -p of an old file: older than any watermark
    load_sources(settings, ["marketing_files"])
    assert _spend(settings, copy.name)[0][0] == before
    os.utime(source, None)  # touched, same content: not reloaded
    again = load_sources(settings, ["marketing_files"])
    assert sum(m.rows_loaded for m in again) == 0
    assert wh(settings, "select count(*) from raw_marketing.spend")[0][0] == 2 * before
    columns = {c for (c,) in wh(settings, "select column_name from information_schema.columns "
                                          "where table_name = 'spend' and table_schema = 'raw_marketing'")}  # fmt: skip
    assert {"_file_name", "_file_line", "_file_modified_at", "_file_hash"} <= columns


def test_restated_file_reloads_in_full_with_its_new_hash(demo) -> None:
    settings, sim = demo
    load_sources(settings, ["marketing_files"])
    path = next(sim.paths.marketing_dir.glob("spend_*.csv"))
    lines = path.read_text().splitlines()
    stat = path.stat()
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # a line less, same mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    load_sources(settings, ["marketing_files"])
    assert _spend(settings, path.name) == [(2 * len(lines) - 3, 2)]


def test_unreadable_spend_files_are_one_reject_each_and_never_fail_the_run(demo) -> None:
    settings, sim = demo
    folder = sim.paths.marketing_dir
    latin = folder / "spend_2026-01-03.csv"
    latin.write_bytes(b"spend_date,channel,campaign,spend\n2026-01-03,caf\xe9,x,1.00\n")
    semicolons = folder / "spend_2026-01-04.csv"
    semicolons.write_text("spend_date;channel;campaign;spend\n2026-01-04;email;x;1.00\n")
    assert {m.status for m in load_sources(settings, ["marketing_files"])} == {"ok"}
    rows = wh(settings, "select reason_code, reason, record from raw_marketing.rejects order by reason")
    assert [r[0] for r in rows] == ["bad_file", "bad_file"]
    assert "spend_2026-01-03.csv: not UTF-8 (byte 0xe9 at offset 48)" in rows[0][1]
    assert (
        "spend_2026-01-04.csv: header has no column spend_date (found: spend_date;channel;campaign;spend)"
        in (rows[1][1])
    )
    assert "wrong delimiter?" in rows[1][1] and json.loads(rows[1][2])["file"] == semicolons.name
    load_sources(settings, ["marketing_files"])  # unchanged: not rejected again
    assert wh(settings, "select count(*) from raw_marketing.rejects")[0][0] == 2
