"""Sessions in incremental runs: a late event that merges two sessions of a user renumbers the user's
later sessions and removes the one that no longer exists; other users are not rewritten."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.settings import Settings
from tests.python.el_helpers import settings_for, wh

pytestmark = pytest.mark.slow

BUILD = ["build", "--quiet", "--select", "event_types", "stg_events__events+", "--exclude", "fct_customer_features"]
RAW = """
create schema if not exists raw_events;
create table if not exists raw_events.events (
    properties json, event_id varchar, user_id bigint, session_id varchar, event_type varchar,
    event_timestamp timestamptz, received_at timestamptz, _extracted_at timestamptz, _source varchar,
    _dlt_load_id varchar, _dlt_id varchar, app_version varchar
);
"""


def _deliver(settings: Settings, events: list[tuple[str, int, str]], extracted_at: str) -> None:
    """(event_id, user_id, event time) rows as the events loader lands them."""
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(RAW)
        for event_id, user_id, at in events:
            conn.execute(
                "insert into raw_events.events values ('{\"page\": \"/\"}', ?, ?, 's', 'page_view', "
                "?::timestamptz, ?::timestamptz + interval 1 minute, ?::timestamptz, 'test', ?, ?, null)",
                [event_id, user_id, at, at, extracted_at, extracted_at, event_id],
            )


def _sessions(settings: Settings) -> list[tuple]:
    return wh(
        settings,
        "select user_id, session_number, strftime(session_start_at, '%H:%M'), event_count "
        "from main_marts.fct_sessions order by all",
    )


def _build(runner: DbtRunner, *extra: str) -> None:
    done = runner.run([*BUILD, *extra], capture=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_late_event_merges_sessions_in_an_incremental_run(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    settings.warehouse.parent.mkdir(parents=True)
    runner = DbtRunner(settings, detect(settings.project_root))
    day = "2026-03-01 "
    _deliver(
        settings,
        [("a", 1, day + "07:00"), ("b", 1, day + "10:00"), ("c", 1, day + "10:10"), ("d", 1, day + "11:00"),
         ("e", 1, day + "13:00"), ("f", 2, day + "09:00")],
        "2026-03-01 23:00",
    )  # fmt: skip
    _build(runner)
    assert _sessions(settings) == [
        (1, 1, "07:00", 1), (1, 2, "10:00", 2), (1, 3, "11:00", 1), (1, 4, "13:00", 1), (2, 1, "09:00", 1)
    ]  # fmt: skip
    user_2_written = wh(settings, "select _watermark from main_marts.fct_sessions where user_id = 2")

    # 10:35 is less than 30 minutes from 10:10 and from 11:00: sessions 2 and 3 of user 1 become one
    _deliver(settings, [("x", 1, day + "10:35"), ("y", 3, "2026-03-02 08:00")], "2026-03-02 23:00")
    _build(runner)
    incremental = _sessions(settings)
    assert incremental == [
        (1, 1, "07:00", 1), (1, 2, "10:00", 4), (1, 3, "13:00", 1), (2, 1, "09:00", 1), (3, 1, "08:00", 1)
    ]  # fmt: skip
    # user 2 had nothing new: its session row was not rewritten
    assert wh(settings, "select _watermark from main_marts.fct_sessions where user_id = 2") == user_2_written

    _build(runner, "--full-refresh")
    assert _sessions(settings) == incremental
