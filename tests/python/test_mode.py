"""Full/core mode selection and how dbt is invoked in each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from el.dbt import CORE_DIR, DbtRunner, core_project, dbt_executable
from el.mode import CORE_SKIPS, FULL_MODE_VAR, Mode, detect, missing_packages, required_packages
from el.settings import Settings
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import settings_for

LOCKED = ["dbt_expectations", "elementary", "dbt_date", "dbt_utils"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("packages.yml", "package-lock.yml", "dbt_project.yml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def _install(project: Path, *names: str) -> None:
    for name in names:
        folder = project / "dbt_packages" / name
        folder.mkdir(parents=True)
        (folder / "dbt_project.yml").write_text(f"name: {name}\n")


def test_lock_names_every_package_including_transitive(project: Path) -> None:
    assert required_packages(project) == LOCKED


def test_core_mode_when_nothing_installed(project: Path) -> None:
    mode = detect(project)
    assert mode.name == "core" and not mode.full
    assert mode.missing == tuple(LOCKED)
    summary = mode.summary()
    assert summary.startswith("mode: core") and "\n" not in summary
    assert all(skip in summary for skip in CORE_SKIPS)


def test_partial_install_is_still_core_and_names_what_is_missing(project: Path) -> None:
    _install(project, "dbt_expectations", "dbt_date")
    (project / "dbt_packages" / "elementary").mkdir()  # a folder without dbt_project.yml is not a package
    assert missing_packages(project) == ["elementary", "dbt_utils"]
    assert detect(project).missing == ("elementary", "dbt_utils")


def test_full_mode_when_all_installed(project: Path) -> None:
    _install(project, *LOCKED)
    mode = detect(project)
    assert mode.full and mode.summary().startswith("mode: full")


def test_failed_dbt_deps_reason_is_reported(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `dbt deps` against a package hub that does not answer (dbt's DBT_PACKAGE_HUB_URL): core mode,
    with dbt's failure said in one line; its dbt.log goes to the settings' log folder, not the project's."""
    monkeypatch.setenv("DBT_PACKAGE_HUB_URL", "http://127.0.0.1:1/")
    run = tmp_path / "run"  # (the project is tmp_path itself)
    files = {"DBT_LOG_PATH": str(run / "logs"), "DBT_TARGET_PATH": str(run / "target")}
    mode = detect(project, dbt_executable(), project, files)
    assert mode.name == "core" and mode.missing == tuple(LOCKED)
    assert "`dbt deps` failed: package hub unreachable (offline?)" in mode.reason
    assert (run / "logs" / "dbt.log").is_file()
    assert not (project / "logs").exists() and not (project / "dbt_packages").exists()


def test_core_runner_uses_linked_project_and_disables_package_tests(project: Path) -> None:
    settings = Settings(project, project / "w.duckdb", project / "src")
    core = DbtRunner(settings, Mode("core", tuple(LOCKED), "offline", CORE_SKIPS))
    cmd = core.command(["build"], {"lookback_days": 5})
    assert cmd[cmd.index("--project-dir") + 1] == str(project / CORE_DIR)
    assert json.loads(cmd[cmd.index("--vars") + 1]) == {"lookback_days": 5, FULL_MODE_VAR: False}
    shadow = project / CORE_DIR
    assert (shadow / "dbt_project.yml").resolve() == (project / "dbt_project.yml").resolve()
    assert not (shadow / "packages.yml").exists()

    full = DbtRunner(settings, Mode("full"))
    cmd = full.command(["build"])
    assert cmd[cmd.index("--project-dir") + 1] == str(project)
    assert "--vars" not in cmd


def test_a_callers_vars_are_merged_into_the_runners(project: Path) -> None:
    """dbt keeps only the last --vars: `el dbt test --vars '{a: 1}'` in core mode must keep both."""
    settings = Settings(project, project / "w.duckdb", project / "src")
    core = DbtRunner(settings, Mode("core", tuple(LOCKED), "offline", CORE_SKIPS))
    cmd = core.command(["test", "--vars", "{unique_tests_whole_table: true}", "--select", "x"], {"lookback_days": 1})
    assert cmd.count("--vars") == 1 and cmd[1:4] == ["test", "--select", "x"]
    merged = {"unique_tests_whole_table": True, "lookback_days": 1, FULL_MODE_VAR: False}
    assert json.loads(cmd[cmd.index("--vars") + 1]) == merged
    assert json.loads(core.command(["test", "--vars={a: 2}"])[-1]) == {"a": 2, FULL_MODE_VAR: False}
    with pytest.raises(ValueError, match="YAML mapping"):
        core.command(["test", "--vars", "[1]"])


def test_core_project_is_rebuilt_idempotently(project: Path) -> None:
    first = core_project(project)
    second = core_project(project)
    assert first == second and (second / "dbt_project.yml").is_symlink()
    assert (second / "dbt_project.yml").resolve() == (project / "dbt_project.yml").resolve()


def test_core_project_built_by_several_processes_at_once_never_misses_an_entry(project: Path) -> None:
    """The Airflow scheduler (parsing the DAG file), `el lint` and runs build it concurrently: while they
    do, every entry of the folder is there (links were unlinked and re-created, so a reader, or another
    builder, found one missing: FileExistsError / FileNotFoundError)."""
    builder = (
        "import sys; from pathlib import Path; from el.dbt import core_project\n"
        "for _ in range(300): core_project(Path(sys.argv[1]))"
    )
    (project / "models").mkdir()
    core_project(project)  # built once; then rebuilt by two processes while it is read
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    builders = [
        subprocess.Popen([sys.executable, "-c", builder, str(project)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    shadow = project / CORE_DIR
    missing = 0
    while any(b.poll() is None for b in builders):
        missing += sum(not (shadow / name).exists() for name in ("dbt_project.yml", "models"))
    errors = [b.communicate()[1] for b in builders]
    assert [b.returncode for b in builders] == [0, 0], errors
    assert missing == 0


def test_core_mode_parses_the_real_project_with_package_tests_disabled(tmp_path: Path) -> None:
    """dbt itself parses this repository in core mode; package tests land in the disabled set."""
    settings = settings_for(tmp_path)
    runner = DbtRunner(settings, Mode("core", tuple(LOCKED), "offline", CORE_SKIPS))
    done = runner.run(["parse"], capture=True)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((settings.target_dir / "manifest.json").read_text())
    enabled = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    disabled = [n for nodes in manifest["disabled"].values() for n in nodes if n["resource_type"] == "test"]
    namespaces = {n["test_metadata"]["namespace"] for n in enabled if n.get("test_metadata")}
    assert enabled, "core mode must keep dbt's own tests"
    assert namespaces <= {None}, f"package tests enabled in core mode: {namespaces}"
    assert disabled, "the project defines dbt-expectations, dbt_utils and Elementary tests; core mode must disable them"
    assert {n["test_metadata"]["namespace"] for n in disabled} == {"dbt_expectations", "elementary", "dbt_utils"}
