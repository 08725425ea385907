"""The events' fit rows handed to dlt as Arrow (el/sources/guard.py, RowsAsArrow) land exactly as dlt's
row path lands them: the same API pages loaded both ways into two DuckDB warehouses give the same raw
rows, columns (nested values flattened into columns) and rejects - and the Arrow path really was taken
where it can be."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from el.contracts import events_contract
from el.load import Loader, new_run_id
from el.sources.events_api import events_resource
from tests.python.el_helpers import api_time, serve_pages, settings_for, wh

LAG_SECONDS = 3600.0
PAGE = 5
DAY1 = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
DAY3 = DAY2 + dt.timedelta(days=1)
LINEAGE = ("_dlt_load_id", "_dlt_id", "_extracted_at")


def event(n: int, received: dt.datetime, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": f"ev-{n}",
        "user_id": 1000 + n % 7,
        "session_id": f"s-{n // 4}",
        "event_type": ("page_view", "click", "add_to_cart", "purchase")[n % 4],
        "event_timestamp": api_time(received - dt.timedelta(seconds=3)),
        "received_at": api_time(received),
        "properties": {"page": f"/p/{n}", "product_id": n, "value": n + 0.25} if n % 4 >= 2 else {"page": "/"},
    }
    row.update(changes)
    return row


def day1() -> list[dict[str, Any]]:
    return [event(n, DAY1 + dt.timedelta(minutes=n)) for n in range(12)]


def day2() -> list[dict[str, Any]]:
    """Every bad-row kind, duplicates, odd but fit values, a drift column from row 30 on (mid-batch: later
    pages only) and a nested value in an unknown column (one page). Two minutes apart: the rows that force
    the row path are more than the lag (1 h) before the last one, so day 3 does not read them again."""
    at = [DAY2 + dt.timedelta(minutes=2 * n) for n in range(45)]
    rows = [event(100 + n, at[n]) for n in range(45)]
    bad = {
        1: {"event_id": None},  # null key
        3: {"event_type": "scroll_depth"},  # unknown event type
        5: {"properties": '{"page": "/p"'},  # malformed JSON (passed through as text)
        7: {"user_id": "u-7"},  # type drift: user_id
        9: {"event_timestamp": "yesterday"},  # type drift: timestamp
        11: {"properties": {"product_id": "abc"}},  # type drift: properties
        13: {"event_timestamp": api_time(at[13] - dt.timedelta(days=40))},  # out of range: too late
        15: {"event_timestamp": api_time(at[15] + dt.timedelta(hours=2))},  # out of range: clock skew
        17: {"user_id": 2**70},  # out of range: not an int64
    }
    odd = {
        2: {"user_id": "42"},  # digits as text: typed to 42
        4: {"user_id": 7.0},  # a whole float: typed to 7
        6: {"event_timestamp": (at[6] - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")},  # naive
        8: {
            "event_timestamp": (at[8] - dt.timedelta(seconds=5))
            .astimezone(dt.timezone(dt.timedelta(hours=2)))
            .isoformat()
        },
        20: {"session_id": None, "properties": None},
        16: {"session_id": 'sé-ü/ñ "quoted"'},
        10: {"device": {"os": "ios", "version": {"major": 17}}},  # nested value in an unknown column
        12: {"session_id": 12345},  # an int in a text column (dlt's row path decides what it becomes)
    }
    for index, change in {**bad, **odd}.items():
        rows[index] = {**rows[index], **change}
    for index in range(30, 45):
        rows[index] = {**rows[index], "app_version": f"2.{index}.0"}
    rows.insert(26, dict(rows[25]))  # a duplicate delivery inside the batch
    rows.insert(27, dict(day1()[3], received_at=api_time(at[25] + dt.timedelta(seconds=1))))  # a redelivery
    return rows


def day3() -> list[dict[str, Any]]:
    """The drift column is part of the table now: every page fits it, so the odd but fit values here (a
    naive and a +02:00 timestamp, digits as text, a whole float, nulls) go by Arrow."""
    rows = [event(300 + n, DAY3 + dt.timedelta(minutes=n), app_version="3.0.0") for n in range(11)]
    at = [DAY3 + dt.timedelta(minutes=n) for n in range(11)]
    odd = {
        1: {"event_timestamp": (at[1] - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")},
        2: {
            "event_timestamp": (at[2] - dt.timedelta(seconds=5))
            .astimezone(dt.timezone(dt.timedelta(hours=2)))
            .isoformat()
        },
        3: {"user_id": "42"},
        4: {"user_id": 7.0},
        5: {"session_id": None, "properties": None, "app_version": None},
    }
    for index, change in odd.items():
        rows[index] = {**rows[index], **change}
    return rows


class Api:
    """The events API's protocol (cursor pages, received_since) over a list of rows the test extends."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def page(self, query: dict[str, str]) -> dict[str, Any]:
        since = query.get("received_since")
        start = dt.datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        rows = [r for r in self.rows if start is None or dt.datetime.fromisoformat(r["received_at"]) >= start]
        offset, limit = int(query.get("cursor", "0")), int(query["limit"])
        chunk = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        return {"data": chunk, "next_cursor": str(offset + limit) if more else None}


def load(tmp: Path, url: str, arrow: bool) -> list[str]:
    """One `el load` of the events into the warehouse under `tmp`; the extract files of `events`."""
    loader = Loader(settings_for(tmp), new_run_id())
    resources = events_resource(
        url, loader.extracted_at, LAG_SECONDS, page_size=PAGE, contract=events_contract(), arrow_rows=arrow
    )
    loader.run("events_api", "events", resources)
    trace = loader.pipeline("events_api").last_trace
    assert trace is not None and trace.last_extract_info is not None
    files = [
        Path(job.file_path).name
        for steps in trace.last_extract_info.metrics.values()
        for step in steps
        for job in step["job_metrics"].values()
    ]
    return ["parquet" if ".parquet" in name else "rows" for name in files if name.startswith("events.")]


def tables(tmp: Path) -> list[str]:
    sql = "select table_name from information_schema.tables where table_schema = 'raw_events' order by 1"
    return [name for (name,) in wh(settings_for(tmp), sql) if not name.startswith("_dlt")]


def columns(tmp: Path, table: str) -> list[tuple[Any, ...]]:
    return wh(settings_for(tmp), f'select column_name, column_type, "null" from (describe raw_events.{table})')


def content(tmp: Path, table: str) -> list[tuple[Any, ...]]:
    names = [name for name, _, _ in columns(tmp, table) if name not in (*LINEAGE, "_dlt_parent_id")]
    select = ", ".join(f'"{name}"::varchar' for name in names)
    return wh(settings_for(tmp), f"select {select} from raw_events.{table} order by all")


def lineage_shape(tmp: Path) -> tuple[Any, ...]:
    sql = """
        select count(*), count(distinct _dlt_id), min(length(_dlt_id)), max(length(_dlt_id)),
               count(distinct _dlt_load_id), count(distinct _extracted_at), count(_extracted_at)
        from raw_events.events
    """
    (shape,) = wh(settings_for(tmp), sql)
    return shape


@pytest.fixture
def warehouses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    monkeypatch.delenv("SHOP_EVENTS_URL", raising=False)
    monkeypatch.delenv("DBT_TARGET", raising=False)
    rows, arrow = tmp_path / "rows", tmp_path / "arrow"
    api = Api()
    formats: dict[str, Any] = {}
    with serve_pages(api.page) as url:
        for day, batch in (("day1", day1()), ("day2", day2()), ("day3", day3())):
            api.rows += batch
            formats[day] = (load(rows, url, arrow=False), load(arrow, url, arrow=True))
    yield rows, arrow, formats


def test_arrow_path_lands_what_the_row_path_lands(warehouses: tuple[Path, Path, dict[str, Any]]) -> None:
    rows, arrow, formats = warehouses
    # the Arrow path was taken where it can be, and only there
    assert formats["day1"] == (["rows"], ["rows"])  # the table is not stored yet: by rows
    by_rows, by_arrow = formats["day2"]
    assert set(by_rows) == {"rows"}
    assert set(by_arrow) == {"parquet", "rows"}  # the first pages Arrow; drift and nested pages by rows
    assert formats["day3"] == (["rows"], ["parquet"])  # the drift column is stored now: all Arrow
    # the same tables, columns (order, types, nullability) and rows
    assert tables(rows) == tables(arrow)
    assert {"events", "rejects"} <= set(tables(rows))
    for table in tables(rows):
        assert columns(rows, table) == columns(arrow, table), table
        assert content(rows, table) == content(arrow, table), table
    names = [name for name, _, _ in columns(rows, "events")]
    assert {"app_version", "device__os", "device__version__major", "_dlt_id"} <= set(names)
    assert lineage_shape(rows) == lineage_shape(arrow)
    loaded, distinct_ids, shortest, longest, loads, extracted, with_extracted = lineage_shape(arrow)
    assert loaded == distinct_ids == with_extracted and shortest == longest and loads == extracted == 3
    # every bad-row kind was quarantined, the odd but fit values were typed
    sql = "select reason_code, count(distinct record) from raw_events.rejects group by 1 order by 1"
    codes = wh(settings_for(arrow), sql)  # distinct records: day 3 reads the last hour of day 2 again (lag)
    expected = [("malformed_JSON", 1), ("null_key", 1), ("out_of_range", 3), ("type_drift", 3), ("unknown_value", 1)]
    assert codes == expected
    typed = wh(
        settings_for(arrow), "select event_id, user_id from raw_events.events where event_id in ('ev-102', 'ev-104')"
    )
    assert sorted(typed) == [("ev-102", 42), ("ev-104", 7)]
