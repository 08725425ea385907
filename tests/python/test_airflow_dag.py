"""The Airflow DAG (orchestration/dags/shop_elt.py): imports cleanly, renders the dbt project of the
current mode, and two simulated days through `airflow dags test` build the marts of `el run`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from el.dbt import DbtRunner
from el.mode import detect
from el.orchestration import backfill_window, run_id_for
from el.pipeline import PipelineRun, RunOptions
from shopsim import SimConfig, Simulator
from tests.python.airflow_helpers import airflow_env, dags_test, describe_dag, migrate, require_airflow
from tests.python.el_helpers import BATCH_MARTS, demo_events_url, settings_for, wh

# build bookkeeping and wall-clock extraction times (the two pipelines load at different moments), not content
IGNORED = {"_watermark", "first_extracted_at", "last_extracted_at"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_airflow()
    folder = tmp_path_factory.mktemp("airflow_home")
    migrate(folder)
    return folder


def test_run_id_and_backfill_window() -> None:
    import datetime as dt

    assert run_id_for("scheduled__2026-01-02T00:00:00+00:00") == "airflow-scheduled__2026-01-02T00:00:00+00:00"
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert backfill_window(day, day + dt.timedelta(days=1)) == (dt.date(2026, 1, 1), dt.date(2026, 1, 1))
    assert backfill_window(day, day + dt.timedelta(days=3)) == (dt.date(2026, 1, 1), dt.date(2026, 1, 3))


def test_dag_imports_and_renders_the_manifest_of_the_current_mode(home: Path, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    dag = describe_dag(airflow_env(home, settings))
    assert dag["errors"] == {}
    assert dag["max_active_runs"] == 1
    assert dag["deadline"]["callback"] == "el.orchestration.deadline_missed"
    assert dag["deadline"]["reference"] == "DagRunQueuedAtDeadline"
    tasks = set(dag["tasks"])
    assert {"begin", "load_shop_db", "load_events_api", "load_marketing_files"} <= tasks
    assert {"source_freshness", "elementary_report", "finish"} <= tasks
    assert dag["retries"]["load_shop_db"][1] == 2.0, "EL tasks retry with exponential backoff"

    mode = detect(settings.project_root)
    runner = DbtRunner(settings, mode)
    done = runner.run(["parse", "--quiet"], capture=True)
    assert done.returncode == 0, done.stdout[-2000:]
    manifest = json.loads((settings.target_dir / "manifest.json").read_text())
    suffix = {"model": "model", "seed": "seed", "snapshot": "snapshot"}
    expected = {
        f"dbt.{node['name']}_{suffix[node['resource_type']]}_build"
        for node in manifest["nodes"].values()
        if node["resource_type"] in suffix
    }
    rendered = {task for task in tasks if task.startswith("dbt.") and task.endswith("_build")}
    assert rendered == expected, f"only in DAG: {rendered - expected}; only in manifest: {expected - rendered}"
    assert len(expected) > 25
    # tests spanning several models run as their own tasks: each is an enabled test of this mode's manifest
    enabled_tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    detached = {t.removeprefix("dbt.") for t in tasks if t.startswith("dbt.") and not t.endswith("_build")}
    assert detached and detached <= {f"{name}_test" for name in enabled_tests} | enabled_tests, detached
    if not mode.full:  # core mode: no package-dependent test is rendered
        disabled = manifest.get("disabled", {})
        assert any("dbt_expectations" in key or "elementary" in key for key in disabled), "core mode disables them"
        assert not [t for t in tasks if "expect_" in t or "elementary" in t.removeprefix("elementary_report")]


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = 'main_marts' and table_name = ? "
        "order by ordinal_position",
        [table],
    ).fetchall()
    return ", ".join(f'"{name}"' for (name,) in rows if name not in IGNORED)


@pytest.mark.slow
def test_two_days_of_dags_test_build_the_marts_of_el_run(home: Path, tmp_path: Path) -> None:
    """Day 1 as a scheduled run (recompute what the new rows touch), day 2 as a backfill run (the conf
    `recompute` takes the backfill path: the logical date's interval -> `el run --from/--to`), each
    compared with the same `el run`."""
    dag_settings, run_settings = settings_for(tmp_path / "dag"), settings_for(tmp_path / "run")
    config = SimConfig(scale=15, seed=7)
    dag_sim, run_sim = Simulator(dag_settings.sources_root, config), Simulator(run_settings.sources_root, config)
    mode = detect(run_settings.project_root)
    for day, logical_date in enumerate(("2026-01-02", "2026-01-03"), start=1):
        dag_sim.advance(1)
        run_sim.advance(1)
        with demo_events_url(dag_settings) as url:
            # Airflow 3.3.2's `dags test` crashes at the end of a successful run of a DAG with a deadline alert
            # (DagRun.update_state looks the un-serialized alert up as an id): the deadline is off here
            env = airflow_env(home, dag_settings, SHOP_EVENTS_URL=url or "", SHOP_AIRFLOW_DEADLINE_MINUTES="0")
            conf = {"recompute": True} if day == 2 else None
            status = dags_test(env, logical_date, tmp_path / f"dags_test_{day}.log", conf=conf)
        log = (tmp_path / f"dags_test_{day}.log").read_text()
        assert status == 0, log[-4000:]
        # day 2: `el run --from/--to` the day before the logical date (the run's data interval, its date)
        dates = (dt.date(2026, 1, 2),) * 2 if day == 2 else (None, None)
        if day == 2:
            assert "dates 2026-01-02 to 2026-01-02" in log, "the backfill path maps the logical date"
        with demo_events_url(run_settings) as url:
            options = RunOptions(quiet=True, events_url=url, date_from=dates[0], date_to=dates[1])
            run = PipelineRun(run_settings, mode, f"el-run-{day}", options)
            assert all(r.status != "failed" for r in run.execute()), run.summary()

    runs = wh(dag_settings, "select run_id, status from el_meta.pipeline_runs where step = 'run' order by run_id")
    assert len(runs) == 2 and all(rid.startswith("airflow-manual__") and st == "ok" for rid, st in runs), runs
    per_run = wh(
        dag_settings,
        "select run_id, count(distinct pipeline_name), count(*) filter (where status = 'ok') "
        "from el_meta.load_metrics group by run_id order by run_id",
    )
    assert [(rid, sources) for rid, sources, _ in per_run] == [(rid, 3) for rid, _ in runs]
    steps = wh(dag_settings, f"select step, status from el_meta.pipeline_runs where run_id = '{runs[-1][0]}'")
    assert {"load shop_db", "load events_api", "load marketing_files", "source freshness"} <= {s for s, _ in steps}

    with duckdb.connect(str(dag_settings.warehouse), read_only=True) as conn:
        conn.execute(f"attach '{run_settings.warehouse}' as el_run (read_only)")
        for mart in BATCH_MARTS:
            columns = _columns(conn, mart)
            rows = conn.execute(f"select count(*) from main_marts.{mart}").fetchone()[0]
            only_dag, only_run = (
                conn.execute(
                    f"select count(*) from (select {columns} from {a}.{mart} "
                    f"except all select {columns} from {b}.{mart})"
                ).fetchone()[0]
                for a, b in (("main_marts", "el_run.main_marts"), ("el_run.main_marts", "main_marts"))
            )
            assert (only_dag, only_run) == (0, 0), f"{mart}: {only_dag} rows only from Airflow, {only_run} only el run"
            if mart not in ("fct_rejects",):
                assert rows > 0, f"{mart} is empty: the comparison would prove nothing"
