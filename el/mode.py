"""Full or core mode: are the dbt hub packages of packages.yml installed?

full: every package in package-lock.yml is installed in dbt_packages/ (or `dbt deps` just installed them).
core: they are not (offline); dbt runs on the same models without packages.yml, with the
package-dependent tests disabled and no Elementary hooks or report.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FULL_MODE_VAR = "full_mode"
ELEMENTARY_OFF_IN_CORE_MODE = "core mode: Elementary package not installed"
# dbt_project.yml disables the elementary package (and our YAML its tests) on a spark target, in either mode
ELEMENTARY_OFF_ON_SPARK = (
    "Elementary is off on Spark: its models and hooks need MERGE or DELETE (Delta, Iceberg or Hudi), "
    "which plain parquet tables lack"
)


def elementary_off(full_mode: bool, engine: str) -> str | None:
    """Why the Elementary package has nothing for edr (report, alerts) here, or None: core mode has no
    package, and on a spark target dbt_project.yml disables it."""
    if not full_mode:
        return ELEMENTARY_OFF_IN_CORE_MODE
    if engine == "spark":
        return ELEMENTARY_OFF_ON_SPARK
    return None


@dataclass(frozen=True)
class Mode:
    name: str  # "full" or "core"
    missing: tuple[str, ...] = ()
    reason: str = ""
    skipped: tuple[str, ...] = field(default=())

    @property
    def full(self) -> bool:
        return self.name == "full"

    def summary(self) -> str:
        if self.full:
            return "mode: full (dbt-expectations, Elementary tests and hooks enabled)"
        return (
            f"mode: core ({self.reason}) - skipped: {', '.join(self.skipped)}; run `dbt deps` online to get full mode"
        )


CORE_SKIPS = (
    "dbt-expectations tests",
    "dbt_utils compound-key tests (our unique_combination test runs instead)",
    "Elementary anomaly/schema tests",
    "Elementary on-run-end hooks",
    "edr report",
)


def required_packages(project_dir: Path) -> list[str]:
    """Project names of every package the lock file pins, transitive ones included."""
    lock = project_dir / "package-lock.yml"
    source = lock if lock.exists() else project_dir / "packages.yml"
    if not source.exists():
        return []
    entries = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("packages") or []
    names = []
    for entry in entries:
        name = entry.get("name") or str(entry.get("package", entry.get("git", ""))).rstrip("/").split("/")[-1]
        names.append(name.removesuffix(".git"))
    return names


def missing_packages(project_dir: Path, install_path: str = "dbt_packages") -> list[str]:
    root = project_dir / install_path
    return [name for name in required_packages(project_dir) if not (root / name / "dbt_project.yml").is_file()]


def try_dbt_deps(
    dbt: Path, project_dir: Path, profiles_dir: Path, timeout: float = 60.0, env: dict[str, str] | None = None
) -> str | None:
    """Run `dbt deps` (`env`: on top of this process's environment, e.g. where dbt writes its log); None
    on success, else a one-line reason."""
    try:
        done = subprocess.run(
            [str(dbt), "deps", "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`dbt deps` timed out after {timeout:.0f}s"
    except OSError as exc:
        return f"`dbt deps` could not start: {exc}"
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else f"exit {done.returncode}"
    if "Failed to resolve" in last or "Max retries exceeded" in last:
        last = "package hub unreachable (offline?)"
    return f"`dbt deps` failed: {last[:200]}"


def detect(
    project_dir: Path, dbt: Path | None = None, profiles_dir: Path | None = None, env: dict[str, str] | None = None
) -> Mode:
    """Full when all packages are installed; otherwise try `dbt deps` once if a dbt is given (with `env`:
    the settings' log and target folders, so its dbt.log goes where every other dbt command's does)."""
    missing = missing_packages(project_dir)
    if not missing:
        return Mode("full")
    reason = f"packages not installed: {', '.join(missing)}"
    if dbt is not None:
        failure = try_dbt_deps(dbt, project_dir, profiles_dir or project_dir, env=env)
        missing = missing_packages(project_dir)
        if failure is None and not missing:
            return Mode("full")
        if failure:
            reason = f"{reason}; {failure}"
    return Mode("core", tuple(missing), reason, CORE_SKIPS)
