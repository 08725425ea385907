"""Headless Chromium renders the Airflow UI's graph of the shop_elt DAG, dbt model tasks included."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.python.airflow_helpers import (
    DAG_ID,
    airflow_cli,
    airflow_env,
    describe_dag,
    migrate,
    require_airflow,
    wait_for,
)
from tests.python.el_helpers import chromium, free_port, settings_for

pytestmark = pytest.mark.slow


@contextmanager
def devtools() -> Iterator[Any]:
    """A headless Chromium driven through the DevTools protocol: yields call(method, **params)."""
    from websockets.sync.client import connect  # installed with Airflow

    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-sync", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--window-size=1600,1200", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            for _ in range(300):
                if port_file.exists() and port_file.read_text().strip():
                    break
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as answer:
                page = next(t for t in json.load(answer) if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                counter = iter(range(1, 1_000_000))

                def call(method: str, **params: Any) -> dict[str, Any]:
                    ident = next(counter)
                    ws.send(json.dumps({"id": ident, "method": method, "params": params}))
                    while True:
                        message = json.loads(ws.recv(timeout=60))
                        if message.get("id") == ident:
                            return message.get("result", {})

                yield call
        finally:
            browser.terminate()
            browser.wait(30)


def test_airflow_graph_renders_the_dbt_model_tasks(tmp_path: Path) -> None:
    require_airflow()
    chromium()
    home, port = tmp_path / "airflow_home", free_port()
    migrate(home)
    env = airflow_env(home, settings_for(tmp_path), AIRFLOW__API__HOST="127.0.0.1", AIRFLOW__API__PORT=str(port))
    dag = describe_dag(env)
    models = {t.removeprefix("dbt.") for t in dag["tasks"] if t.startswith("dbt.") and t.endswith("_model_build")}
    assert len(models) > 20
    done = subprocess.run([airflow_cli(), "dags", "reserialize"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = tmp_path / "api_server.log"
    server = subprocess.Popen(
        [airflow_cli(), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/v2/monitor/health", 180, server, log)
        with devtools() as call:
            call("Page.enable")
            call("Page.navigate", url=f"{base}/dags/{DAG_ID}")
            time.sleep(3)
            # the UI keeps its view and the expanded task groups in localStorage: graph, Cosmos' `dbt` group open
            call(
                "Runtime.evaluate",
                expression=f"localStorage.setItem('default_dag_view', '\"graph\"'); "
                f"localStorage.setItem('{DAG_ID}/open-groups', '[\"dbt\"]')",
            )
            call("Page.navigate", url=f"{base}/dags/{DAG_ID}")
            script = (
                "Array.from(document.querySelectorAll('.react-flow__node'))"
                ".map(e => [e.getAttribute('data-id'), e.innerText])"
            )
            nodes: dict[str, str] = {}
            for _ in range(90):
                value = call("Runtime.evaluate", expression=script, returnByValue=True)["result"].get("value")
                nodes = {node_id: text for node_id, text in value or []}
                if {f"dbt.{m}" for m in models} <= set(nodes):
                    break
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(60)
    graph = {node_id.removeprefix("dbt."): text for node_id, text in nodes.items()}
    assert models <= set(graph), f"model tasks missing from the graph: {sorted(models - set(graph))}"
    assert {"begin", "load_shop_db", "dbt", "source_freshness", "finish"} <= set(graph)
    assert "fct_daily_revenue_model_build" in graph["fct_daily_revenue_model_build"], "the node shows its name"
    assert "DbtBuildLocalOperator" in graph["fct_daily_revenue_model_build"], "and Cosmos' operator"
    assert "Task Group" in graph["dbt"]
