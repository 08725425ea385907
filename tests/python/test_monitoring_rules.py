"""Alert rules as code: `promtool test rules` over monitoring/alerts_test.yml, every rule covered firing
and silent; metrics export never fails a run (unreachable Pushgateway: a warning, the file still written)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from el import prom
from el.metrics import LoadMetric
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import settings_for

RULES = PROJECT_ROOT / "monitoring" / "alerts.yml"
RULE_TESTS = PROJECT_ROOT / "monitoring" / "alerts_test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus (scripts/test.sh does it as root)"
)


@needs_promtool
def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    done = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_is_tested_firing_and_silent() -> None:
    rules = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert len(rules) == 6
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert fired == rules, f"rules never tested firing: {rules - fired}"
    assert silent == rules, f"rules never tested silent: {rules - silent}"


def test_export_writes_the_textfile_and_only_warns_when_the_gateway_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    settings = settings_for(tmp_path)
    monkeypatch.setenv(prom.PUSHGATEWAY_ENV, "http://127.0.0.1:1")  # nothing listens there
    snapshot = prom.RunSnapshot(
        "shop_elt",
        "unit-1",
        finished=True,
        failed=True,
        loads=[LoadMetric("unit-1", "shop_db", "orders", 7, 2, 300, 1.5, None, now, now, "ok")],
        steps={"load": ("failed", 2.0), "run": ("failed", 3.0)},
        dbt_nodes={("test", "fail"): 3},
    )
    path = prom.export(settings, snapshot)
    assert path == tmp_path / "wh" / "metrics" / "shop_elt.prom"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert samples[("shop_run_failed", ())] == 1
    assert samples[("shop_el_rows_loaded", (("source", "shop_db"), ("table", "orders")))] == 7
    assert samples[("shop_el_rows_rejected", (("source", "shop_db"), ("table", "orders")))] == 2
    assert samples[("shop_step_failed", (("step", "load"),))] == 1
    assert samples[("shop_dbt_nodes", (("resource_type", "test"), ("status", "fail")))] == 3
    assert "warning: metrics not pushed to http://127.0.0.1:1" in capsys.readouterr().err


def test_metrics_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prom.METRICS_DIR_ENV, str(tmp_path / "textfiles"))
    path = prom.export(settings_for(tmp_path), prom.RunSnapshot("shop_stream", "s-1", finished=False, failed=False))
    assert path == tmp_path / "textfiles" / "shop_stream.prom"
    assert 'shop_run_info{run_id="s-1"} 1.0' in path.read_text()


def test_dag_tasks_export_metrics_and_lineage_of_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow tasks' code (el.orchestration, no Airflow needed): a failed load, then `finish`."""
    import json

    from el.lineage import run_uuid
    from el.orchestration import TaskRun
    from el.pipeline import StepFailedError

    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:1/nothing")  # unreachable
    settings = settings_for(tmp_path)
    task = TaskRun(settings, "airflow-manual__1")
    task.begin()
    with pytest.raises(StepFailedError, match="unreachable"):
        task.load("shop_db")
    assert task.finish(["load_shop_db"]) == "failed"
    text = (tmp_path / "wh" / "metrics" / "shop_elt.prom").read_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("shop_run_info", (("run_id", "airflow-manual__1"),))] == 1
    assert samples[("shop_run_failed", ())] == 1
    assert samples[("shop_step_failed", (("step", "load shop_db"),))] == 1
    assert not any(name == "shop_step_last_success_timestamp_seconds" for name, _ in samples)  # never succeeded
    events = [json.loads(line) for line in (tmp_path / "wh" / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    load = [e for e in events if e["job"]["name"] == "load_shop_db"]
    assert [e["eventType"] for e in load] == ["START", "FAIL"]
    assert "unreachable" in load[1]["run"]["facets"]["errorMessage"]["message"]
    assert load[1]["run"]["facets"]["parent"]["run"]["runId"] == run_uuid("airflow-manual__1")
    assert [e["eventType"] for e in events if e["job"]["name"] == "shop_elt"] == ["START", "FAIL"]


def test_lineage_goes_to_the_http_endpoint_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHOP_OPENLINEAGE_URL: the events are POSTed (a real local HTTP server), and no file is written."""
    import datetime as dt
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from el import lineage

    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(lineage.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
        settings = settings_for(tmp_path)
        now = dt.datetime.now(dt.UTC)
        emitter = lineage.emitter(settings, "http-1")
        assert emitter is not None
        emitter.loads([LoadMetric("http-1", "shop_db", "orders", 12, 1, 900, 0.5, "l1", now, now, "ok")])
    finally:
        server.shutdown()
        server.server_close()
    assert [(path, body["eventType"]) for path, body in received] == [
        ("/api/v1/lineage", "START"),
        ("/api/v1/lineage", "COMPLETE"),
    ]
    output = received[1][1]["outputs"][0]
    assert output["name"] == "raw_shop.orders" and output["outputFacets"]["outputStatistics"]["rowCount"] == 12
    assert received[1][1]["inputs"][0] == {**received[1][1]["inputs"][0], "namespace": "shop-source://shop_db"}
    assert not lineage.lineage_file(settings).exists()


def test_a_dag_runs_dbt_counts_come_from_its_cosmos_task_states() -> None:
    """Cosmos task ids and Airflow states -> (resource type, dbt status); other tasks and unfinished ones are out."""
    states = {
        "dbt.stg_shop__orders_model_build": "success",
        "dbt.fct_orders_model_build": "failed",
        "dbt.fct_daily_revenue_model_build": "upstream_failed",
        "dbt.countries_seed_build": "success",
        "dbt.customers_snapshot_snapshot_build": "success",
        "dbt.relationships_fct_orders_customer_id_test": "upstream_failed",
        "dbt.assert_daily_revenue_equals_orders_test": "failed",
        "dbt.dim_products_model_build": None,
        "load_shop_db": "failed",
        "finish": "running",
    }
    assert prom.cosmos_node_counts(states) == {
        ("model", "success"): 1,
        ("model", "error"): 1,
        ("model", "skipped"): 1,
        ("seed", "success"): 1,
        ("snapshot", "success"): 1,
        ("test", "skipped"): 1,
        ("test", "fail"): 1,
    }
