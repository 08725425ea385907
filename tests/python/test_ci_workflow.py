"""The GitHub Actions workflow's production build step (.github/workflows/ci.yml, "Full build"), run
here as Actions runs it: its script in bash, in a checkout-like folder (a temporary one, with the
project's virtualenv as .venv), with the workflow's environment. Actions itself cannot run here; the
script can, and a broken script is what a fork would meet first on main."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import free_port

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"


def full_build_step(workflow: dict) -> dict:
    steps = [step for step in workflow["jobs"]["dbt"]["steps"] if step.get("name", "").startswith("Full build")]
    assert len(steps) == 1, "ci.yml: one 'Full build' step in the dbt job"
    return steps[0]


@pytest.mark.slow
def test_full_build_step_loads_and_builds_the_simulated_store(tmp_path: Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    step = full_build_step(workflow)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    env = {
        **os.environ,
        **{name: str(value) for name, value in workflow["env"].items()},
        **{name: str(value) for name, value in step.get("env", {}).items()},
        "SHOP_EVENTS_PORT": str(free_port()),  # not the workflow's fixed port: it may be in use here
        # what a checkout's root gives on Actions (data/, target/, logs/ and .dbt_core/ of the checkout)
        "SHOP_SOURCES": str(checkout / "data" / "sources"),
        "SHOP_TARGET_DIR": str(checkout / "target"),
        "SHOP_LOG_DIR": str(checkout / "logs"),
        "SHOP_DBT_CORE_DIR": str(checkout / ".dbt_core"),
    }
    env.pop("SHOP_EVENTS_URL", None)  # the step must provide it
    script = subprocess.Popen(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the step's background API server is in its process group
    )
    try:
        output, _ = script.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGTERM)
    assert script.returncode == 0, output[-4000:]
    warehouse = checkout / workflow["env"]["SHOP_WAREHOUSE"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        steps = dict(conn.execute("select step, status from el_meta.pipeline_runs").fetchall())
        events = conn.execute("select count(*) from raw_events.events").fetchone()
        sessions = conn.execute("select count(*) from main_marts.fct_sessions").fetchone()
        orders = conn.execute("select count(*) from main_marts.fct_orders").fetchone()
    assert steps["load"] == "ok" and steps["dbt build"] == "ok", steps
    assert events is not None and events[0] > 0
    assert sessions is not None and sessions[0] > 0
    assert orders is not None and orders[0] > 0
