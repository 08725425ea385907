"""The DAG under a real Airflow scheduler (LocalExecutor, PostgreSQL metadata DB): `airflow backfill create`
over two days builds the marts of `el run --from --to` over the same days, each run's logical date mapping
to its `--from/--to`, and the scheduler fires the deadline alert of a run that missed its deadline.

The metadata DB is PostgreSQL, as in any deployment: SQLite holds one writer, and a CLI command that
writes while the scheduler, the dag-processor and the API server write too can fail with `database is
locked` (it did, once, in CI). The test is skipped, saying why, only where no PostgreSQL is reachable."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import pytest

from el.alerts import WEBHOOK_ENV
from tests.python.airflow_helpers import (
    DAG_ID,
    airflow,
    airflow_cli,
    airflow_env,
    migrate,
    require_airflow,
    wait_for,
)
from tests.python.el_helpers import free_port, settings_for, webhook_receiver, wh
from tests.python.pg import scratch_database

pytestmark = pytest.mark.slow

DAYS = ("2026-01-01", "2026-01-02")


@contextmanager
def airflow_services(env: dict[str, str], logs: Path) -> Iterator[None]:
    """api-server (the task execution API), dag-processor and scheduler (LocalExecutor) as subprocesses;
    stopped with SIGTERM (SIGKILL after 60 s) when the block ends."""
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    port = env["AIRFLOW__API__PORT"]
    try:
        for name, args in (
            ("api_server", ["api-server", "--host", "127.0.0.1", "--port", port]),
            ("dag_processor", ["dag-processor"]),
            ("scheduler", ["scheduler"]),
        ):
            log = (logs / f"{name}.log").open("w")
            process = subprocess.Popen([airflow_cli(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
            processes.append((name, process))
        wait_for(f"http://127.0.0.1:{port}/api/v2/monitor/health", 180, processes[0][1], logs / "api_server.log")
        yield
    finally:
        for _, process in reversed(processes):  # the scheduler first: its running tasks need the API server
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def metadata(url: str, sql: str, *params: str) -> list[dict]:
    """Rows of Airflow's metadata DB for the DAG (`%s` first) (polling it costs nothing, unlike the CLI)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, (DAG_ID, *params)).fetchall()


def dag_runs(url: str) -> list[dict]:
    """The DAG's runs; dates as ISO text in UTC (`2026-01-01T00:00:00+00:00`), whatever the server's zone."""
    rows = metadata(
        url, "select run_id, run_type, logical_date, state, start_date, end_date from dag_run where dag_id = %s"
    )
    dates = ("logical_date", "start_date", "end_date")
    return [{k: v.astimezone(UTC).isoformat() if k in dates and v else v for k, v in row.items()} for row in rows]


def task_states(url: str, run_id: str) -> dict[str, str]:
    rows = metadata(url, "select task_id, state from task_instance where dag_id = %s and run_id = %s", run_id)
    return {row["task_id"]: row["state"] for row in rows}


def test_backfill_under_the_scheduler_maps_dates_and_fires_the_alerts(tmp_path: Path) -> None:
    """Two days backfilled by the scheduler and its LocalExecutor, the sources unreachable (short runs):
    one run per logical date, one at a time, each recomputing its own day; each run misses its (tiny)
    deadline and the scheduler fires the deadline alert; the failed EL task alerts; dbt is skipped."""
    require_airflow()
    home = tmp_path / "airflow_home"
    settings = settings_for(tmp_path)
    port = str(free_port())
    with scratch_database() as url, webhook_receiver() as (hook, received):
        # psycopg 3 (a dependency of the project) for Airflow's sync and async engines alike
        psycopg = "postgresql+psycopg://" + url.split("://", 1)[1]  # SHOP_TEST_PG may say postgres://
        conn = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": psycopg, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": psycopg}
        migrate(home, **conn)
        env = airflow_env(
            home,
            settings,
            **conn,
            SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/nothing",  # unreachable: the runs fail fast
            SHOP_EVENTS_URL="http://127.0.0.1:1",
            SHOP_EVENTS_MAX_ATTEMPTS="1",
            SHOP_FILES_DIR=str(tmp_path / "no_drops"),
            # the schedule starts after the backfilled days, so no scheduled run competes with the backfill
            SHOP_AIRFLOW_START="2099-01-01",
            SHOP_AIRFLOW_DEADLINE_MINUTES="0.01",  # 0.6 s after being queued: every run misses it
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="2",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=port,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            **{WEBHOOK_ENV: hook},
        )
        with airflow_services(env, tmp_path):
            started = time.monotonic()
            while not metadata(url, "select dag_id from serialized_dag where dag_id = %s"):
                assert time.monotonic() - started < 600, (tmp_path / "dag_processor.log").read_text()[-3000:]
                time.sleep(3)
            airflow(env, "dags", "unpause", DAG_ID)
            airflow(
                env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", DAYS[0], "--to-date", DAYS[1],
                "--max-active-runs", "1",
            )  # fmt: skip
            while True:
                runs = dag_runs(url)
                if len(runs) == 2 and all(run["state"] in ("success", "failed") for run in runs):
                    break
                assert time.monotonic() - started < 1500, f"{runs}\n{(tmp_path / 'scheduler.log').read_text()[-3000:]}"
                time.sleep(3)
            states = {run["run_id"]: task_states(url, run["run_id"]) for run in runs}
            # what the Cosmos dbt tasks of each backfill run get as `el run --from/--to` (dbt vars)
            rendered = {
                run["run_id"]: airflow(
                    env, "tasks", "render", DAG_ID, "dbt.fct_daily_revenue_model_build", run["run_id"]
                )
                for run in runs
            }
            time.sleep(2)  # the last alerts are posted by the task processes as they end

    # one backfill run per logical date, run one after the other
    runs.sort(key=lambda run: run["logical_date"])
    assert [run["logical_date"][:10] for run in runs] == list(DAYS), runs
    assert all(run["run_type"] == "backfill" and run["state"] == "failed" for run in runs), runs
    assert runs[0]["end_date"] <= runs[1]["start_date"], f"the two backfill runs overlapped: {runs}"
    for run in runs:
        ran = states[run["run_id"]]
        assert ran["begin"] == "success" and ran["load_shop_db"] == "failed", ran
        assert ran["dbt.stg_shop__orders_model_build"] == "upstream_failed", ran
        assert ran["elementary_report"] == "skipped" and ran["finish"] == "failed", ran

    # the logical date mapped to `el run --from/--to` of that day (the `begin` task logs the dates)
    logs = {path.read_text() for path in (home / "logs").rglob("*.log") if "task_id=begin" in str(path)}
    for day in DAYS:
        assert any(f"dates {day} to {day}" in text for text in logs), f"no begin log with {day}: {logs}"

    for run, day in zip(runs, DAYS, strict=True):
        text = rendered[run["run_id"]]
        assert f"'backfill_from': '{day}'" in text and f"'backfill_to': '{day}'" in text, text[-3000:]
        assert f"airflow-{run['run_id']}" in text, "the dbt task gets the run id of the DAG run"

    run_ids = {f"airflow-{run['run_id']}" for run in runs}
    recorded = wh(settings, "select run_id, status from el_meta.pipeline_runs where step = 'run' order by run_id")
    assert {rid for rid, _ in recorded} == run_ids and all(st == "failed" for _, st in recorded), recorded

    # the scheduler fired the deadline alert of each run (through the LocalExecutor), the tasks their failures
    deadlines = [a for a in received if a["kind"] == "deadline missed"]
    assert {a["run_id"] for a in deadlines} == run_ids, f"deadline alerts: {deadlines}; all: {received}"
    assert all(a["dag"] == DAG_ID and "deadline" in a["error"] for a in deadlines), deadlines
    failures = {(a["run_id"], a["task"]) for a in received if a["kind"] == "task failed"}
    assert {(rid, "load_shop_db") for rid in run_ids} <= failures, received
