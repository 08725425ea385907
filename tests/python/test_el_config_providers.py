"""dlt's configuration providers in el: the environment and .dlt/secrets.toml, not Airflow's Variable store."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
import el  # the project's package, imported before dlt resolves anything
import dlt

pipeline = dlt.pipeline(
    pipeline_name="providers_probe",
    destination=dlt.destinations.duckdb(sys.argv[1] + "/warehouse.duckdb"),
    dataset_name="probe",
    pipelines_dir=sys.argv[1] + "/pipelines",
)
pipeline.run([{"id": 1}], table_name="t")
with pipeline.sql_client() as client:
    rows = client.execute_sql("select count(*) from probe.t")[0][0]
print(json.dumps({
    "providers": [provider.name for provider in dlt.config.config_providers],
    "airflow_imported": "airflow" in sys.modules,
    "rows": rows,
}))
"""


def _probe(folder: Path, **env: str) -> dict[str, object]:
    folder.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "PROVIDERS__ENABLE_AIRFLOW_SECRETS"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(importlib.util.find_spec("airflow") is None, reason="the airflow extra is not installed")
def test_dlt_in_el_does_not_ask_airflow_unless_told_to(tmp_path: Path) -> None:
    default = _probe(tmp_path / "default")
    assert default["rows"] == 1
    assert not any("Airflow" in name for name in default["providers"]), default  # type: ignore[union-attr]
    assert default["airflow_imported"] is False
    # the switch is dlt's own: set to true, dlt imports Airflow and adds its provider again
    enabled = _probe(tmp_path / "enabled", PROVIDERS__ENABLE_AIRFLOW_SECRETS="true")
    assert enabled["rows"] == 1
    assert enabled["airflow_imported"] is True
    assert any("Airflow" in name for name in enabled["providers"]), enabled  # type: ignore[union-attr]
