"""Every model, source and column of the dbt project is described; marts carry enforced contracts."""

from __future__ import annotations

import json

import pytest

from el.dbt import DbtRunner
from el.mode import detect
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import settings_for


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("parse")
    settings = settings_for(tmp)
    done = DbtRunner(settings, detect(PROJECT_ROOT)).run(["parse"], capture=True)
    assert done.returncode == 0, done.stdout[-2000:]
    return json.loads((settings.target_dir / "manifest.json").read_text())


def _own(manifest: dict, kind: str) -> list[dict]:
    nodes = manifest["sources"] if kind == "source" else manifest["nodes"]
    return [n for n in nodes.values() if n["resource_type"] == kind and n["package_name"] == "shop"]


def test_every_model_and_column_is_described(manifest: dict) -> None:
    undocumented = []
    for node in _own(manifest, "model") + _own(manifest, "source") + _own(manifest, "seed"):
        if not node["description"].strip():
            undocumented.append(node["unique_id"])
        undocumented += [f"{node['unique_id']}.{c}" for c, col in node["columns"].items() if not col["description"]]
    assert _own(manifest, "model"), "no models parsed"
    assert undocumented == []


def test_marts_have_enforced_contracts(manifest: dict) -> None:
    marts = [n for n in _own(manifest, "model") if n["fqn"][1] == "marts"]
    assert len(marts) == 11  # 9 business marts, the streamed fct_order_status_hourly and fct_rejects
    for node in marts:
        assert node["config"]["contract"]["enforced"], node["name"]
        assert all(col["data_type"] for col in node["columns"].values()), node["name"]


def test_staging_names_follow_the_convention(manifest: dict) -> None:
    for node in _own(manifest, "model"):
        layer = node["fqn"][1]
        prefix = {"staging": "stg_", "intermediate": "int_", "marts": ("fct_", "dim_")}[layer]
        assert node["name"].startswith(prefix), node["name"]
        if layer == "staging":
            assert node["name"].count("__") == 1, node["name"]
