"""Project hygiene: the product does not depend on its demo, and tests never write into the project."""

from __future__ import annotations

import ast
from pathlib import Path

from el.dbt import DbtRunner
from el.mode import detect
from shopsim import SimConfig, Simulator
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import run_el, settings_for

WRITTEN_BY_RUNS = ("data", "target", "logs", ".dbt_core")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_el_module_imports_the_simulator() -> None:
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] == "shopsim")
        for path in (PROJECT_ROOT / "el").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_test_settings_point_outside_the_repository(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    for path in (settings.warehouse, settings.sources_root, settings.target_dir, settings.log_dir, settings.core_dir):
        assert not path.resolve().is_relative_to(PROJECT_ROOT), path


def _snapshot() -> dict[str, float]:
    """Every file the project's run folders hold, with its modification time."""
    return {
        str(path): path.lstat().st_mtime
        for folder in WRITTEN_BY_RUNS
        if (PROJECT_ROOT / folder).exists()
        for path in [PROJECT_ROOT / folder, *(PROJECT_ROOT / folder).rglob("*")]
    }


def test_dbt_run_by_a_test_leaves_the_demo_artifacts_untouched(tmp_path: Path) -> None:
    before = _snapshot()
    settings = settings_for(tmp_path)
    runner = DbtRunner(settings, detect(PROJECT_ROOT))
    for args in (["parse"], ["docs", "generate", "--static", "--empty-catalog"]):
        done = runner.run(args, capture=True)
        assert done.returncode == 0, done.stdout[-2000:]
    assert (settings.target_dir / "static_index.html").exists() and (settings.log_dir / "dbt.log").exists()
    assert _snapshot() == before


def test_load_outside_a_terminal_prints_no_dlt_progress_lines(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Simulator(settings.sources_root, SimConfig(scale=5)).advance(1)
    done = run_el(settings, "load", "marketing_files")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith("el") for line in lines), lines  # table summary + run total
