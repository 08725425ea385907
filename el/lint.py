"""`el lint`: sqlfluff with the dbt templater, in the same mode dbt runs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from el.dbt import CORE_DIR, DbtRunner
from el.mode import Mode
from el.settings import Settings

DEFAULT_PATHS = ("models", "tests", "snapshots")


def lint_command(settings: Settings, mode: Mode, fix: bool, paths: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    root = settings.project_root
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    targets = sorted(
        str(f)
        for p in (paths or DEFAULT_PATHS)
        for f in ([root / p] if p.endswith(".sql") else (root / p).rglob("*.sql"))
    )
    if not mode.full:
        # the dbt templater must compile the project without packages.yml, like dbt itself in core mode
        project = DbtRunner(settings, mode).project_dir
        override = project / ".sqlfluff-core"
        override.write_text(f"[sqlfluff:templater:dbt]\nproject_dir = {project}\nprofiles_dir = {root}\n")
        targets = [t.replace(str(root), str(root / CORE_DIR), 1) for t in targets]
        return [str(sqlfluff), "fix" if fix else "lint", *targets, "--config", str(override), *extra]
    return [str(sqlfluff), "fix" if fix else "lint", *targets, *extra]


def lint(settings: Settings, mode: Mode, fix: bool = False, paths: list[str] | None = None) -> int:
    env = DbtRunner(settings, mode).env()
    cmd = lint_command(settings, mode, fix, list(paths or []))
    return subprocess.run(cmd, cwd=settings.project_root, env={**os.environ, **env}, check=False).returncode
