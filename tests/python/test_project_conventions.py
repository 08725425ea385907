"""dbt-project-evaluator's rules, checked on our own models from the manifest of a `dbt parse`
(into a temporary target): primary keys, public exposures, staging reads one source, descriptions,
source freshness."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from fnmatch import fnmatchcase

import pytest

from el.contracts import REJECT_CODES
from el.dbt import DbtRunner
from el.mode import detect
from el.sources.kafka import SCHEMA_VIOLATION
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import settings_for

# generic tests that assert a compound primary key (dbt_utils', dbt-expectations' or one of ours)
COMBINATION_TESTS = ("unique_combination_of_columns", "unique_combination", "expect_compound_columns_to_be_unique")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    settings = settings_for(tmp_path_factory.mktemp("conventions"))
    done = DbtRunner(settings, detect(PROJECT_ROOT)).run(["parse"], capture=True)
    assert done.returncode == 0, done.stdout[-2000:]
    return json.loads((settings.target_dir / "manifest.json").read_text())


def _excepted(rule: str) -> list[str]:
    """The deliberate deviations the evaluator is told about (seeds/dbt_project_evaluator_exceptions.csv,
    LIKE patterns), each with a reason: the same list excuses a finding here."""
    with (PROJECT_ROOT / "seeds" / "dbt_project_evaluator_exceptions.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["fct_name"] == rule]
    assert all(row["comment"].strip() for row in rows), f"every exception of {rule} says why"
    return [row["id_to_exclude"].replace("%", "*") for row in rows]


def _is_excepted(rule: str, name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in _excepted(rule))


def _own(manifest: dict, kind: str) -> list[dict]:
    nodes = manifest["sources"] if kind == "source" else manifest["nodes"]
    return [n for n in nodes.values() if n["resource_type"] == kind and n["package_name"] == "shop"]


def _layer(node: dict) -> str:
    return node["fqn"][1]


def _generic_tests(manifest: dict) -> list[dict]:
    """Generic tests, enabled or not (core mode disables the package ones; they still declare keys)."""
    disabled = [n for nodes in manifest["disabled"].values() for n in nodes]
    return [
        n
        for n in [*manifest["nodes"].values(), *disabled]
        if n["resource_type"] == "test" and n.get("test_metadata") and n.get("attached_node")
    ]


def test_every_model_has_a_primary_key_test(manifest: dict) -> None:
    checks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    compound: set[str] = set()
    for test in _generic_tests(manifest):
        name, model = test["test_metadata"]["name"], test["attached_node"]
        if name in ("unique", "not_null", "unique_in_window") and test.get("column_name"):
            # unique_in_window: the unique test of large incremental models (tests/generic)
            checks[model][test["column_name"]].add(name.removesuffix("_in_window"))
        if any(key in name for key in COMBINATION_TESTS):
            compound.add(model)
    for node in _own(manifest, "model"):  # a contract's not_null constraint counts as a not_null test
        for column, spec in node["columns"].items():
            if any(c["type"] in ("not_null", "primary_key") for c in spec.get("constraints") or []):
                checks[node["unique_id"]][column].add("not_null")
    keyless = [
        node["name"]
        for node in _own(manifest, "model")
        if node["unique_id"] not in compound
        and not any(found >= {"unique", "not_null"} for found in checks[node["unique_id"]].values())
    ]
    assert keyless == []


def _model_children(manifest: dict) -> dict[str, list[str]]:
    """Own models and sources -> the own models that read them directly."""
    children: dict[str, list[str]] = defaultdict(list)
    for node in _own(manifest, "model"):
        for parent in node["depends_on"]["nodes"]:
            children[parent].append(node["unique_id"])
    return children


def test_no_model_fans_out_to_more_than_three_leaves(manifest: dict) -> None:
    """The evaluator's model fanout rule: a model read directly by more than three end-of-DAG models
    holds logic those models should share (models_fanout_threshold = 3)."""
    children = _model_children(manifest)
    fanout = {}
    for node in _own(manifest, "model"):
        leaves = [c for c in children[node["unique_id"]] if not children[c]]
        if len(leaves) > 3 and not _is_excepted("fct_model_fanout", node["name"]):
            fanout[node["name"]] = sorted(leaf.split(".")[-1] for leaf in leaves)
    assert fanout == {}


def test_every_source_feeds_one_model_or_an_excepted_pair(manifest: dict) -> None:
    """The evaluator's source fanout rule, with the deliberate exception written down once: a raw table
    feeds its staging model and, by design, its cast-rejects view."""
    fanout = {}
    for source in _own(manifest, "source"):
        name = f"{source['source_name']}.{source['name']}"
        readers = _model_children(manifest)[source["unique_id"]]
        if len(readers) > 1 and not _is_excepted("fct_source_fanout", name):
            fanout[name] = readers
    assert fanout == {}


def test_exposures_depend_only_on_public_models(manifest: dict) -> None:
    assert manifest["exposures"], "the project declares exposures"
    private = [
        (exposure["name"], parent)
        for exposure in manifest["exposures"].values()
        for parent in exposure["depends_on"]["nodes"]
        if parent.startswith("model.") and manifest["nodes"][parent].get("access") != "public"
    ]
    assert private == []


def test_staging_models_read_exactly_one_source_and_nothing_else(manifest: dict) -> None:
    """Staging models read sources of ONE source system and nothing else, one table each but for the
    evaluator exceptions (stg_shop__cast_rejects unions the cast failures of the five shop tables)."""
    wrong = {}
    for node in _own(manifest, "model"):
        parents = node["depends_on"]["nodes"]
        systems = {parent.split(".")[2] for parent in parents if parent.startswith("source.")}
        if _layer(node) == "staging" and (
            not parents or len(systems) != 1 or not all(p.startswith("source.") for p in parents)
        ):
            wrong[node["name"]] = parents
        joined = len(parents) > 1 and not _is_excepted("fct_multiple_sources_joined", node["name"])
        if _layer(node) == "staging" and joined:
            wrong[node["name"]] = parents
    assert wrong == {}


def test_only_staging_models_read_sources(manifest: dict) -> None:
    direct = {
        node["name"]: [p for p in node["depends_on"]["nodes"] if p.startswith("source.")]
        for node in _own(manifest, "model")
        if _layer(node) != "staging"
    }
    assert {name: parents for name, parents in direct.items() if parents} == {}


def test_every_model_source_and_column_is_described(manifest: dict) -> None:
    missing = []
    for node in _own(manifest, "model") + _own(manifest, "source"):
        if not node["description"].strip():
            missing.append(node["unique_id"])
        missing += [f"{node['unique_id']}.{c}" for c, col in node["columns"].items() if not col["description"].strip()]
    assert missing == []


def test_every_source_column_is_declared(manifest: dict) -> None:
    """dbt only knows the columns a YAML lists: a source table without columns documents nothing."""
    assert [n["unique_id"] for n in _own(manifest, "source") if not n["columns"]] == []


def test_every_source_table_has_freshness_or_a_reasoned_exemption(manifest: dict) -> None:
    unchecked = []
    for node in _own(manifest, "source"):
        freshness = node.get("freshness") or {}
        checked = bool(freshness.get("warn_after", {}).get("count") or freshness.get("error_after", {}).get("count"))
        meta = {**(node.get("meta") or {}), **(node.get("config", {}).get("meta") or {})}
        exempt = str(meta.get("freshness_exempt") or "").strip()
        # the evaluator is told the same exemption (its exceptions seed)
        excepted = _is_excepted("fct_sources_without_freshness", f"{node['source_name']}.{node['name']}")
        if not checked and not (exempt and excepted):
            unchecked.append(node["unique_id"])
    assert unchecked == []


def test_reason_code_tests_accept_exactly_the_codes_written(manifest: dict) -> None:
    """The accepted_values tests on reason_code warn on a code they do not list: they list what el/ writes
    (el.contracts.REJECT_CODES, the stream's schema_violation) and what dbt adds (parent_quarantined), no
    more (a listed code nothing writes hides nothing but misleads), no less (a real code warned every run)."""
    accepted = {
        test["attached_node"].split(".")[-1]: set(test["test_metadata"]["kwargs"]["values"])
        for test in manifest["nodes"].values()
        if test["resource_type"] == "test"
        and (test.get("test_metadata") or {}).get("name") == "accepted_values"
        and test["test_metadata"]["kwargs"].get("column_name") == "reason_code"
    }
    el_codes = set(REJECT_CODES)
    assert accepted == {
        "stg_shop__rejects": el_codes,
        "stg_shop__cast_rejects": el_codes,
        "fct_rejects": el_codes | {SCHEMA_VIOLATION, "parent_quarantined"},
    }
    quarantined = (PROJECT_ROOT / "models" / "intermediate" / "int_orders__quarantined_children.sql").read_text()
    assert "'parent_quarantined' as reason_code" in quarantined
