"""The real check: Debian's Pushgateway and Prometheus on loopback (temp storage, 1 s scrape and rule
evaluation, monitoring/alerts.yml loaded), a demo `el run --log-format json` pushes its metrics, Prometheus
scrapes them and returns the run's row counts (compared with el_meta.load_metrics); the run's OpenLineage
file walks source -> raw -> staging -> mart -> exposure; every log line is JSON with the run id; a failing
run makes ShopPipelineFailed fire."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from el.lineage import run_uuid, source_namespace
from el.mode import detect
from shopsim import SimConfig, Simulator
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import demo_events_url, env_for, free_port, settings_for, wh

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
if PROMETHEUS is None or PUSHGATEWAY is None:
    pytest.skip(
        "Debian's prometheus / prometheus-pushgateway missing (scripts/test.sh installs them as root)",
        allow_module_level=True,
    )

RUN_ID = "mon-ok-1"
FAILED_RUN_ID = "mon-broken-1"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@dataclass
class Stack:
    prometheus: str
    pushgateway: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = _get(f"{self.prometheus}/api/v1/query?query={urllib.parse.quote(promql)}")
        assert data["status"] == "success", data
        return data["data"]["result"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("prom")
    gateway_port, prometheus_port = free_port(), free_port()
    config = home / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(PROJECT_ROOT / "monitoring" / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}],
                    }
                ],
            }
        )
    )
    logs = (home / "pushgateway.log").open("w"), (home / "prometheus.log").open("w")
    processes = [
        subprocess.Popen(
            [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{gateway_port}"], stdout=logs[0], stderr=logs[0]
        ),
        subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=logs[1],
            stderr=logs[1],
        ),
    ]
    stack = Stack(f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{gateway_port}")
    try:
        _wait("pushgateway", lambda: urllib.request.urlopen(f"{stack.pushgateway}/-/ready", timeout=2).status == 200)
        _wait("prometheus", lambda: urllib.request.urlopen(f"{stack.prometheus}/-/ready", timeout=2).status == 200)
        yield stack
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for log in logs:
            log.close()


@dataclass
class DemoRun:
    settings: Any
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo_run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    settings = settings_for(tmp_path_factory.mktemp("run"))
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    with demo_events_url(settings) as url:
        env = env_for(settings, SHOP_EVENTS_URL=url or "", SHOP_PUSHGATEWAY_URL=stack.pushgateway)
        done = subprocess.run(
            [sys.executable, "-m", "el.cli", "--log-format", "json", "run", "--run-id", RUN_ID],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=900,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return DemoRun(settings, done)


def test_prometheus_returns_the_runs_row_counts(stack: Stack, demo_run: DemoRun) -> None:
    _wait("the run's series", lambda: stack.query(f'shop_run_info{{run_id="{RUN_ID}"}}'))
    stored = wh(
        demo_run.settings,
        "select pipeline_name, table_name, sum(rows_loaded), sum(rejects) from el_meta.load_metrics "
        f"where run_id = '{RUN_ID}' group by 1, 2",
    )
    assert len(stored) >= 5 and sum(r[2] for r in stored) > 0
    for metric, column in (("shop_el_rows_loaded", 2), ("shop_el_rows_rejected", 3)):
        scraped = {
            (r["metric"]["source"], r["metric"]["table"]): float(r["value"][1])
            for r in stack.query(f'{metric}{{job="shop_elt"}}')
        }
        assert scraped == {(r[0], r[1]): float(r[column]) for r in stored}, metric
    assert float(stack.query('shop_run_failed{job="shop_elt"}')[0]["value"][1]) == 0
    # dbt's build and freshness made it too: the models of the build, every source table's lag
    models = stack.query('shop_dbt_nodes{job="shop_elt",resource_type="model",status="success"}')
    built = wh(demo_run.settings, "select count(*) from information_schema.tables where table_schema like 'main_%'")
    assert 0 < float(models[0]["value"][1]) <= built[0][0]
    sources = json.loads((demo_run.settings.target_dir / "sources.json").read_text())["results"]
    assert len(stack.query('shop_source_freshness_lag_seconds{job="shop_elt"}')) == len(sources) > 0
    # a successful run does not page (seen once in the suite: a firing sample right after the push, with
    # shop_run_failed at 0; given a few evaluations to clear, and the series named if it stays)
    deadline = time.monotonic() + 10
    while stack.query('ALERTS{alertname="ShopPipelineFailed"}') and time.monotonic() < deadline:
        time.sleep(1)
    firing = stack.query('ALERTS{alertname="ShopPipelineFailed"}')
    assert not firing, (firing, stack.query("shop_run_failed"))


def test_every_log_line_is_json_with_the_run_id(demo_run: DemoRun) -> None:
    for stream, text in (("stdout", demo_run.done.stdout), ("stderr", demo_run.done.stderr)):
        lines = text.splitlines()
        records = [json.loads(line) for line in lines]  # every line, or this raises
        assert all(r["run_id"] == RUN_ID and r["stream"] == stream and "ts" in r for r in records)
    messages = [json.loads(line)["message"] for line in demo_run.done.stdout.splitlines()]
    assert len(messages) > 50  # dlt's, dbt's and el's own lines, all wrapped
    assert any("source freshness: ok" in m for m in messages)
    assert any("result: ok" in m for m in messages)
    # core mode here (no package hub): Elementary's `edr monitor` alerts are said to be skipped, in one line
    if not detect(PROJECT_ROOT).full:
        assert any("elementary alerts skipped - core mode" in m for m in messages)


def _lineage(settings: Any) -> list[dict[str, Any]]:
    path = settings.warehouse.parent / "lineage" / "openlineage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lineage_walks_source_to_exposure_under_one_run_id(demo_run: DemoRun) -> None:
    events = [e for e in _lineage(demo_run.settings) if e["job"]["name"] != "shop_elt"]
    parent = run_uuid(RUN_ID)
    assert events and all(e["run"]["facets"]["parent"]["run"]["runId"] == parent for e in events)
    states: dict[str, list[str]] = {}
    for event in events:
        states.setdefault(event["job"]["name"], []).append(event["eventType"])
    assert all(s == ["START", "COMPLETE"] for s in states.values()), states
    # the load of shop_db.orders wrote raw_shop.orders with the row count of el_meta.load_metrics
    (rows,) = wh(demo_run.settings, f"select rows_loaded from el_meta.load_metrics where run_id = '{RUN_ID}' "
                 "and pipeline_name = 'shop_db' and table_name = 'orders'")[0]  # fmt: skip
    load = next(e for e in events if e["job"]["name"] == "load.shop_db.orders" and e["eventType"] == "COMPLETE")
    assert load["outputs"][0]["name"] == "raw_shop.orders"
    assert load["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == rows
    # the graph: dataset -> datasets its consumers write
    edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for event in events:
        if event["eventType"] != "COMPLETE":
            continue
        for dataset_in in event["inputs"]:
            for dataset_out in event["outputs"]:
                key = (dataset_in["namespace"], dataset_in["name"])
                edges.setdefault(key, set()).add((dataset_out["namespace"], dataset_out["name"]))
    start = (source_namespace("shop_db"), "orders")
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    target = ("exposure", "revenue_dashboard")
    assert target in paths, f"no lineage path from {start} to {target}"
    names = [name for _, name in paths[target]]
    layers = [name.split(".")[0] for name in names[1:-1]]
    assert names[1] == "raw_shop.orders"
    assert any("staging" in layer for layer in layers) and "marts" in layers[-1], names
    # seeds are inputs too (dim_customers reads the countries seed)
    assert ("main_reference.countries" in {d["name"] for e in events if e["job"]["name"] == "dbt.dim_customers"
            for d in e["inputs"]})  # fmt: skip
    parent_states = [e["eventType"] for e in _lineage(demo_run.settings) if e["job"]["name"] == "shop_elt"]
    assert parent_states == ["START", "COMPLETE"]


def test_failing_run_makes_pipeline_failed_fire(stack: Stack, demo_run: DemoRun) -> None:
    env = env_for(
        demo_run.settings,
        SHOP_DB_URL="postgresql://postgres@127.0.0.1:1/nothing",  # unreachable: the load fails
        SHOP_EVENTS_URL="http://127.0.0.1:1",
        SHOP_PUSHGATEWAY_URL=stack.pushgateway,
    )
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "run", "--run-id", FAILED_RUN_ID],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert done.returncode == 1 and "result: FAILED at load" in done.stdout

    def firing() -> list[dict[str, Any]]:
        alerts = _get(f"{stack.prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ShopPipelineFailed" and a["state"] == "firing"]

    (alert,) = _wait("ShopPipelineFailed firing", firing)
    assert alert["labels"]["job"] == "shop_elt" and alert["labels"]["severity"] == "critical"
    assert stack.query(f'shop_run_info{{run_id="{FAILED_RUN_ID}"}}')
    assert float(stack.query('shop_step_failed{job="shop_elt",step="load"}')[0]["value"][1]) == 1
    # the last success of `run` is still the first run's (from el_meta.pipeline_runs): not reset by the failure
    (ok_at,) = wh(demo_run.settings, f"select epoch(finished_at) from el_meta.pipeline_runs where run_id = '{RUN_ID}' "
                  "and step = 'run'")[0]  # fmt: skip
    last = stack.query('shop_step_last_success_timestamp_seconds{job="shop_elt",step="run"}')
    assert float(last[0]["value"][1]) == pytest.approx(ok_at, abs=0.001)
