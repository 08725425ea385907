"""A failed dbt model skips only its descendants (Airflow's task instance states after `airflow dags test`),
and in core mode the Elementary report task is skipped, saying why.

The failing model comes from a temporary copy of the project in which one model's SQL selects a column
that does not exist (a binder error when dbt builds it); the product itself is unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from el.dbt import DbtRunner
from el.mode import detect
from el.pipeline import report_path
from el.prom import metrics_dir
from el.settings import Settings
from shopsim import SimConfig, Simulator
from tests.python.airflow_helpers import DAG_ID, airflow_env, airflow_json, dags_test, migrate, require_airflow
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import demo_events_url, wh

pytestmark = pytest.mark.slow

BROKEN = "stg_marketing__spend"
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "package-lock.yml")
PROJECT_FOLDERS = ("models", "seeds", "snapshots", "macros", "analyses")


def project_copy(root: Path) -> Path:
    """The dbt project (not the Python code) copied to `root`, with the model BROKEN failing at build."""
    for name in PROJECT_FILES:
        if (PROJECT_ROOT / name).exists():
            shutil.copy2(PROJECT_ROOT / name, root / name)
    for name in PROJECT_FOLDERS:
        if (PROJECT_ROOT / name).exists():
            shutil.copytree(PROJECT_ROOT / name, root / name)
    shutil.copytree(
        PROJECT_ROOT / "tests", root / "tests", ignore=shutil.ignore_patterns("python", "*.py", "__pycache__")
    )
    if (PROJECT_ROOT / "dbt_packages").is_dir():  # the copy runs in the project's mode (full when installed)
        (root / "dbt_packages").symlink_to(PROJECT_ROOT / "dbt_packages")
    model = next(root.glob(f"models/**/{BROKEN}.sql"))
    sql = model.read_text()
    # the model's query, wrapped to select a column it does not have: a binder error when dbt builds it
    model.write_text(f"select *, no_such_column_forced_failure from (\n{sql}\n) as forced_failure\n")
    return root


def descendants(manifest: dict, unique_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [unique_id]
    while todo:
        for child in manifest["child_map"].get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_a_failed_model_skips_only_its_descendants(tmp_path: Path) -> None:
    require_airflow()
    home = tmp_path / "airflow_home"
    migrate(home)
    root = tmp_path / "project"
    root.mkdir()
    project_copy(root)
    settings = Settings.under(root, tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=10, seed=3)).advance(1)
    mode = detect(root)
    parsed = DbtRunner(settings, mode).run(["parse", "--quiet"], capture=True)
    assert parsed.returncode == 0, parsed.stdout[-2000:]
    manifest = json.loads((settings.target_dir / "manifest.json").read_text())
    below = descendants(manifest, f"model.shop.{BROKEN}")

    with demo_events_url(settings) as url:
        env = airflow_env(home, settings, SHOP_EVENTS_URL=url or "", SHOP_AIRFLOW_DEADLINE_MINUTES="0")
        status = dags_test(env, "2026-01-02", tmp_path / "dags_test.log")
    log = (tmp_path / "dags_test.log").read_text()
    assert status != 0, "a failed model fails the DAG run"
    runs = airflow_json(env, "dags", "list-runs", DAG_ID)
    assert len(runs) == 1, runs
    rows = airflow_json(env, "tasks", "states-for-dag-run", DAG_ID, runs[0]["run_id"])
    states = {row["task_id"]: row["state"] for row in rows}

    def task_of(unique_id: str) -> str:
        kind, _, name = unique_id.split(".")[:3]  # test ids end with a hash: test.shop.<name>.<hash>
        return f"dbt.{name}_{kind}_build" if kind in ("model", "seed", "snapshot") else f"dbt.{name}_test"

    dbt_tasks = {task for task in states if task.startswith("dbt.")}
    failed_task = f"dbt.{BROKEN}_model_build"
    assert states[failed_task] == "failed", f"{states}\n{log[-3000:]}"
    below_tasks = {task_of(uid) for uid in below} & dbt_tasks
    assert "dbt.fct_marketing_daily_model_build" in below_tasks, below
    assert {task: states[task] for task in below_tasks} == dict.fromkeys(below_tasks, "upstream_failed")
    others = dbt_tasks - below_tasks - {failed_task}
    assert {"dbt.fct_orders_model_build", "dbt.fct_daily_revenue_model_build", "dbt.fct_sessions_model_build"} <= others
    assert {task: states[task] for task in others} == dict.fromkeys(others, "success"), "only descendants skip"
    assert states["source_freshness"] == "success" and states["finish"] == "failed", states
    assert wh(settings, "select count(*) from main_marts.fct_orders")[0][0] > 0, "unrelated marts were built"
    failed_run = wh(settings, "select status, detail from el_meta.pipeline_runs where step = 'run'")
    assert failed_run[0][0] == "failed" and failed_task in failed_run[0][1], failed_run

    # the run's metrics count the dbt tasks by outcome: the broken model errored, its descendants skipped
    exported = (metrics_dir(settings) / "shop_elt.prom").read_text()
    nodes = {
        (sample.labels["resource_type"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(exported)
        if family.name == "shop_dbt_nodes"
        for sample in family.samples
    }
    models = {
        state: {t for t in dbt_tasks if t.endswith("_model_build") and states[t] == state} for state in states.values()
    }
    assert nodes[("model", "error")] == 1 == len(models["failed"]), nodes
    assert (
        nodes[("model", "skipped")]
        == len(models["upstream_failed"])
        == len({t for t in below_tasks if t.endswith("_model_build")})
    ), nodes
    assert nodes[("model", "success")] == len(models["success"]) > 0, nodes

    report = wh(settings, "select status, detail from el_meta.pipeline_runs where step = 'elementary report'")
    if mode.full:  # the report of a failed build is written all the same: it shows the failure
        assert states["elementary_report"] == "success", states
        assert report[0][0] == "ok" and report_path(settings).is_file(), report
        return
    # core mode: the Elementary report task is skipped (not failed, not green), and says why
    assert states["elementary_report"] == "skipped", states
    why = f"core mode (packages not installed: {', '.join(mode.missing)})"
    assert f"elementary report skipped: {why}" in log, log[-3000:]
    assert report == [("skipped", f"{why}; the report needs full mode (`dbt deps` online)")], report
