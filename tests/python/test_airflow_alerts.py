"""Airflow failure handling: retries with backoff then a webhook alert, deadline alerts, and the
warehouse lock that refuses a hand-started `el run` while a DAG task writes the warehouse."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from el.alerts import WEBHOOK_ENV, post
from el.lock import exclusive
from el.orchestration import deadline_missed
from tests.python.airflow_helpers import DAG_ID, airflow_cli, airflow_env, dags_test, migrate, require_airflow
from tests.python.el_helpers import settings_for, webhook_receiver, wh


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_airflow()
    folder = tmp_path_factory.mktemp("airflow_home")
    migrate(folder)
    return folder


def test_deadline_alert_posts_and_a_missing_url_only_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the context Airflow's scheduler hands a deadline callback (airflow.models.deadline.Deadline.handle_miss)
    context = {
        "dag_run": {"dag_id": DAG_ID, "dag_run_id": "scheduled__2026-01-02T00:00:00+00:00", "state": "running"},
        "deadline": {"id": "d-1", "deadline_time": "2026-01-02T03:00:00+00:00"},
    }
    with webhook_receiver() as (url, received):
        monkeypatch.setenv(WEBHOOK_ENV, url)
        deadline_missed(context)
    assert len(received) == 1
    alert = received[0]
    assert alert["kind"] == "deadline missed" and alert["dag"] == DAG_ID and alert["task"] is None
    assert alert["run_id"] == "airflow-scheduled__2026-01-02T00:00:00+00:00"
    assert "2026-01-02T03:00:00+00:00" in alert["error"] and alert["run_id"] in alert["text"]

    monkeypatch.delenv(WEBHOOK_ENV)
    capsys.readouterr()
    assert post({"text": "x"}, url=None) is False
    assert f"warning: alert not sent (set {WEBHOOK_ENV}" in capsys.readouterr().err
    assert post({"text": "x"}, url="http://127.0.0.1:1/unreachable") is False  # said, never raised
    assert "error: alert webhook http://127.0.0.1:1/unreachable failed" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_el_task_is_retried_with_backoff_then_alerts(home: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with webhook_receiver() as (url, received):
        env = airflow_env(
            home,
            settings,
            SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/nothing",  # unreachable
            SHOP_EVENTS_URL="http://127.0.0.1:1",
            SHOP_EVENTS_MAX_ATTEMPTS="1",
            SHOP_FILES_DIR=str(tmp_path / "no_drops"),
            SHOP_AIRFLOW_RETRIES="2",
            SHOP_AIRFLOW_RETRY_DELAY_SECONDS="1",
            **{WEBHOOK_ENV: url},
        )
        status = dags_test(env, "2026-01-02", tmp_path / "dags_test.log")
    log = (tmp_path / "dags_test.log").read_text()
    assert status != 0, "the DAG run must fail"
    alerts = {a["task"]: a for a in received}
    assert "load_shop_db" in alerts, f"alerts: {[a['text'][:200] for a in received]}\n{log[-3000:]}"
    alert = alerts["load_shop_db"]
    assert alert["dag"] == DAG_ID and alert["kind"] == "task failed"
    assert alert["run_id"].startswith("airflow-manual__")
    assert "source database unreachable" in alert["error"]
    assert alert["log_url"] and alert["log_url"].startswith("http"), alert
    assert alert["run_id"] in alert["text"] and "load_shop_db" in alert["text"]
    # three attempts (one + two retries), each recorded under the run id, spaced by the growing backoff
    tries = wh(
        settings,
        "select finished_at from el_meta.pipeline_runs where step = 'load shop_db' and status = 'failed' "
        f"and run_id = '{alert['run_id']}' order by finished_at",
    )
    assert len(tries) == 3, tries
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, f"retry delays {gaps}: 1 s then 2 s at least (exponential)"
    assert len([a for a in received if a["task"] == "load_shop_db"]) == 1, "one alert, after the last retry"
    run = wh(settings, "select status, detail from el_meta.pipeline_runs where step = 'run'")
    assert run and run[0][0] == "failed" and "load_shop_db" in run[0][1], run


@pytest.mark.slow
def test_el_run_is_refused_while_a_dag_task_holds_the_warehouse(home: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    asked, release = threading.Event(), threading.Event()

    class SlowApi(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.set()
            release.wait(60)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = airflow_env(
        home, settings, SHOP_EVENTS_URL=f"http://127.0.0.1:{server.server_address[1]}", SHOP_EVENTS_MAX_ATTEMPTS="1"
    )
    task = subprocess.Popen(
        [airflow_cli(), "tasks", "test", DAG_ID, "load_events_api", "2026-01-02"],
        env=env,
        stdout=(tmp_path / "task.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert asked.wait(120), (tmp_path / "task.log").read_text()[-3000:]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "el.cli", "run"], env=env, capture_output=True, text=True, check=False, timeout=120
        )
        assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
        assert "refused: airflow airflow-" in done.stderr and "load events_api" in done.stderr, done.stderr
        assert time.monotonic() - started < 60, "refused at once, not after waiting"
    finally:
        release.set()
        task.wait(120)
        server.shutdown()
        server.server_close()
    with exclusive(settings.warehouse, "test"):  # the task released the lock when it ended
        pass
    rows = wh(settings, "select step, status from el_meta.pipeline_runs where step = 'load events_api'")
    assert rows == [("load events_api", "failed")], rows
