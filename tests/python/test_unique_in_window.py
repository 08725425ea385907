"""unique_in_window (tests/generic), the primary-key test of the large event models: it reads only the keys
of recently written rows, so it must still fail on any duplicate a recent build could have written, and the
whole-table check (var unique_tests_whole_table, --full-refresh) must still find an old one."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.settings import Settings
from tests.python.el_helpers import settings_for
from tests.python.test_sessions_incremental import _deliver

pytestmark = pytest.mark.slow

BUILD = ["build", "--select", "event_types", "stg_events__events", "int_events__sessionized"]
TEST = ["test", "--select", "stg_events__events", "int_events__sessionized"]
STAGING = "main_staging.stg_events__events"
SESSIONIZED = "main_intermediate.int_events__sessionized"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DbtRunner]:
    """40 events loaded and built on Jan 2, then 4 more on Jan 12: with lookback_days 3 and
    unique_test_window_days 1, only the rows written on Jan 12 are in the window."""
    settings = settings_for(tmp_path_factory.mktemp("unique_in_window"))
    runner = DbtRunner(settings, detect(settings.project_root))
    settings.warehouse.parent.mkdir(parents=True)
    old = [(f"old{i}", i % 5, f"2026-01-01 {10 + i // 6:02d}:{i % 6 * 10:02d}:00+00") for i in range(40)]
    _deliver(settings, old, "2026-01-02 01:00:00+00")
    for day, events in ((2, old), (12, [(f"new{i}", i % 5, f"2026-01-11 20:0{i}:00+00") for i in range(4)])):
        if day == 12:
            _deliver(settings, events, "2026-01-12 01:00:00+00")
        done = runner.run(BUILD, capture=True)
        assert done.returncode == 0, done.stdout[-3000:]
    return settings, runner


def _execute(settings: Settings, sql: str) -> None:
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(sql)


def _duplicate(settings: Settings, table: str, event_id: str) -> None:
    _execute(settings, f"insert into {table} select * from {table} where event_id = '{event_id}'")


def _remove_duplicate(settings: Settings, table: str, event_id: str) -> None:
    last = f"select max(rowid) from {table} where event_id = '{event_id}'"
    _execute(settings, f"delete from {table} where rowid = ({last})")


def _failed_tests(output: str) -> list[str]:
    return sorted(line.split("FAIL 1 ", 1)[1].split()[0] for line in output.splitlines() if "FAIL 1 " in line)


def _compiled(settings: Settings, model: str) -> str:
    (path,) = Path(settings.target_dir, "run").rglob(f"unique_in_window_{model}_event_id*.sql")
    return path.read_text()


def test_a_duplicate_a_recent_build_could_write_fails_the_test(built: tuple[Settings, DbtRunner]) -> None:
    settings, runner = built
    # new1 was extracted Jan 12; old38, user 3's last event before its new one, was re-sessionized
    # (rewritten) by the Jan 12 build
    duplicates = [(STAGING, "new1"), (SESSIONIZED, "old38")]
    for table, event_id in duplicates:
        _duplicate(settings, table, event_id)
    try:
        done = runner.run(TEST, capture=True)
    finally:
        for table, event_id in duplicates:
            _remove_duplicate(settings, table, event_id)
    assert done.returncode == 1
    assert [name.split("_event_id")[0] for name in _failed_tests(done.stdout)] == [
        "unique_in_window_int_events__sessionized",
        "unique_in_window_stg_events__events",
    ]
    for model in ("stg_events__events", "int_events__sessionized"):
        assert "window_keys" in _compiled(settings, model)  # the scoped branch ran, not the whole table


def test_an_old_duplicate_is_found_by_the_whole_table_check(built: tuple[Settings, DbtRunner]) -> None:
    settings, runner = built
    _duplicate(settings, STAGING, "old3")  # extracted Jan 2: outside the window of the scoped test
    try:
        scoped = runner.run(TEST, capture=True)
        whole = runner.run(TEST, {"unique_tests_whole_table": True}, capture=True)
    finally:
        _remove_duplicate(settings, STAGING, "old3")
    assert scoped.returncode == 0, scoped.stdout[-3000:]  # the documented scope: recent rows only
    assert whole.returncode == 1
    assert [name.split("_event_id")[0] for name in _failed_tests(whole.stdout)] == [
        "unique_in_window_stg_events__events"
    ]
    assert "window_keys" not in _compiled(settings, "stg_events__events")
