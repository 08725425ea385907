"""Machine-read output: `el --log-format json` lines carry the run id that the run's rows in
el_meta carry too (`el load` used to tag its lines with one id and record its metrics under another)."""

from __future__ import annotations

import json
from pathlib import Path

from shopsim import SimConfig, Simulator
from tests.python.el_helpers import run_el, settings_for, wh


def test_json_lines_of_el_load_carry_the_run_id_its_metrics_are_stored_under(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    done = run_el(settings, "--log-format", "json", "load", "marketing_files", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    summary = [r["message"] for r in records if r["message"].startswith("el load: run ")]
    assert len(summary) == 1
    run_id = summary[0].removeprefix("el load: run ").split(":")[0]
    assert {r["run_id"] for r in records} == {run_id}
    assert {r["command"] for r in records} == {"load"}
    assert wh(settings, "select distinct run_id from el_meta.load_metrics") == [(run_id,)]
    assert wh(settings, "select count(*) from raw_marketing.spend")[0][0] > 0


def test_el_dbt_leaves_stdout_to_dbt(tmp_path: Path) -> None:
    """`el dbt ls --output json | jq`: the mode line goes to stderr, stdout is dbt's JSON only."""
    settings = settings_for(tmp_path)
    done = run_el(settings, "dbt", "ls", "--quiet", "--output", "json", "--resource-type", "seed", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    nodes = [json.loads(line) for line in done.stdout.splitlines()]  # every line is JSON
    assert {node["resource_type"] for node in nodes} == {"seed"}
    assert {"countries", "event_types", "marketing_channels"} <= {node["name"] for node in nodes}
    assert done.stderr.startswith("mode: ")
