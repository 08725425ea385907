"""Full mode: Elementary's `edr monitor` sends the alert of a failing dbt test to the same webhook as the
pipeline's alerts (SHOP_ALERT_WEBHOOK_URL). The project is copied into a temp folder with one extra singular
test that always fails; a demo `el run` there fails its build and then posts Elementary's alert, which a
local HTTP receiver records. Core mode (no package hub) has no Elementary package: skipped with the reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from el.mode import detect
from shopsim import SimConfig, Simulator
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import demo_events_url, env_for, settings_for, webhook_receiver, wh

pytestmark = pytest.mark.slow

FAILING_TEST = "assert_edr_monitor_alert_fires"
COPIED = shutil.ignore_patterns(".git", ".venv", "data", "target", "logs", ".dbt_core", "dbt_packages", "edr_target")


def test_a_failing_dbt_test_reaches_the_webhook_through_edr_monitor(tmp_path: Path) -> None:
    mode = detect(PROJECT_ROOT)
    if not mode.full:
        pytest.skip(f"core mode ({mode.reason}): Elementary's edr monitor needs the hub packages (`dbt deps` online)")
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, project, ignore=COPIED)
    (project / "dbt_packages").symlink_to(PROJECT_ROOT / "dbt_packages")
    failing = project / "tests" / f"{FAILING_TEST}.sql"
    failing.write_text("-- fails on purpose: the alert under test\nselect 1 as id\n")
    settings = replace(settings_for(tmp_path), project_root=project)
    Simulator(settings.sources_root, SimConfig(scale=3)).advance(1)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with webhook_receiver() as (hook, received), demo_events_url(settings) as events:
        done = subprocess.run(
            [sys.executable, "-m", "el.cli", "run", "--run-id", "edr-alert-1"],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env_for(
                settings, PYTHONPATH=str(PROJECT_ROOT), SHOP_EVENTS_URL=events or "", SHOP_ALERT_WEBHOOK_URL=hook
            ),
            check=False,
            timeout=1500,
        )
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode != 0, output  # the failing test fails the build, and so the run
    steps = dict(wh(settings, "select step, status from el_meta.pipeline_runs where run_id = 'edr-alert-1'"))
    assert steps["dbt build"] == "failed" and steps["load"] == "ok", steps
    alerts = [json.dumps(body) for body in received]
    assert any(FAILING_TEST in text for text in alerts), f"no alert names {FAILING_TEST}: {alerts[:3]}\n{output}"
    # edr's internal dbt project kept its artifacts apart: target/ still holds this project's manifest and
    # run results (the next run parses partially), edr's own files are in target/edr, none in the cwd
    target = settings.target_dir
    assert json.loads((target / "manifest.json").read_text())["metadata"]["project_name"] == "shop"
    ours = json.loads((target / "run_results.json").read_text())["results"]
    assert any(result["unique_id"].startswith("model.shop.") for result in ours)
    assert (target / "edr" / "dbt" / "manifest.json").exists() and (target / "edr" / "edr.log").exists()
    assert not (cwd / "edr_target").exists()
