"""Helpers for the Airflow tests: a throwaway AIRFLOW_HOME per test session, the `airflow` CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from el.settings import Settings
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import env_for

DAGS = PROJECT_ROOT / "orchestration" / "dags"
DAG_ID = "shop_elt"


def require_airflow() -> None:
    """`make test` installs the airflow extra (scripts/test.sh); skip, saying so, only where it is absent."""
    missing = [name for name in ("airflow", "cosmos") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed in {sys.prefix}: "
            "install the extra with `pip install -c constraints.txt -e '.[airflow]'` (make test does)"
        )


def airflow_cli() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Path, settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of an Airflow process using `home` and writing the warehouse of `settings`."""
    defaults = dict(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        PYTHONPATH=str(PROJECT_ROOT),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the venv's dbt, as activated
        SHOP_AIRFLOW_RETRY_DELAY_SECONDS="1",
        SHOP_AIRFLOW_RETRIES="0",
        # a first parse renders the project with `dbt ls` (cached afterwards): more than Airflow's 30 s on a busy CI box
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="300",
        AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="300",
    )
    return env_for(settings, **{**defaults, **extra})


def airflow(env: dict[str, str], *args: str) -> str:
    """Run an `airflow` CLI command, assert it succeeded, return its stdout."""
    done = subprocess.run([airflow_cli(), *args], env=env, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    """An `airflow ... -o json` listing (its stdout may start with warnings: the JSON is the last line)."""
    lines = [line for line in airflow(env, *args, "-o", "json").splitlines() if line.startswith("[")]
    assert lines, f"no JSON from airflow {' '.join(args)}"
    return json.loads(lines[-1])


def migrate(home: Path, **extra: str) -> None:
    """`airflow db migrate` for `home`: its SQLite metadata DB, or the database `extra` names
    (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **extra}
    done = subprocess.run([airflow_cli(), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def dags_test(
    env: dict[str, str], logical_date: str, log: Path, timeout: float = 1800, conf: dict | None = None
) -> int:
    """`airflow dags test` (with the run's `conf`); its output goes to `log` (it is long); returns the exit status."""
    with log.open("w") as out:
        done = subprocess.run(
            [airflow_cli(), "dags", "test", DAG_ID, logical_date, *(["--conf", json.dumps(conf)] if conf else [])],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    return done.returncode


DESCRIBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
dag = bag.dags.get("shop_elt")
deadline = None
if dag is not None and dag.deadline:
    alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline
    deadline = {"reference": type(alert.reference).__name__, "seconds": alert.interval.total_seconds(),
                "callback": alert.callback.path}
print("DESCRIBE " + json.dumps({
    "errors": {k: v[-3000:] for k, v in bag.import_errors.items()},
    "tasks": sorted(t.task_id for t in dag.tasks) if dag else [],
    "max_active_runs": dag.max_active_runs if dag else None,
    "deadline": deadline,
    "retries": {t.task_id: [t.retries, t.retry_exponential_backoff] for t in dag.tasks} if dag else {},
}))
"""


def describe_dag(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", DESCRIBE], env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("DESCRIBE ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("DESCRIBE "))


def wait_for(url: str, seconds: float, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until `url` answers (an Airflow server started by a test); fails with its log if it dies or is silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer in {seconds:.0f}s\n{log.read_text()[-3000:]}")
