"""`el lint`: sqlfluff with the dbt templater, in the same mode dbt runs in.

The dbt templater compiles every model, and `is_incremental()` answers from the warehouse it finds:
linted against an empty warehouse the incremental branches would never be linted, against a built
one the full-refresh branches would not. So every file is linted twice, once with each answer (the
var `lint_is_incremental`, read by macros/overrides/is_incremental.sql), against a throwaway
warehouse and dbt target: linting never depends on, nor touches, the user's warehouse or target/.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from el.dbt import DbtRunner
from el.mode import FULL_MODE_VAR, Mode
from el.settings import Settings
from el.warehouse import DEFAULT_TARGET

DEFAULT_PATHS = ("models", "tests", "snapshots")
# the answers of is_incremental() in the passes
PASSES = (False, True)


def isolated_settings(settings: Settings, workdir: Path) -> Settings:
    """The same project, with warehouse, dbt target, logs and core-mode folder in `workdir`; always on
    DuckDB (the SQL dialect of .sqlfluff), whatever DBT_TARGET says."""
    return replace(
        settings,
        target=DEFAULT_TARGET,
        postgres=None,
        warehouse=workdir / "lint.duckdb",
        target_dir=workdir / "target",
        log_dir=workdir / "logs",
        core_dir=workdir / "dbt_core",
    )


def lint_command(
    settings: Settings, mode: Mode, fix: bool, paths: list[str], incremental: bool, extra: tuple[str, ...] = ()
) -> list[str]:
    """One sqlfluff pass, `is_incremental()` answering `incremental`. `settings` should be isolated
    (see isolated_settings): the override config is written into its core_dir."""
    root = settings.project_root
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    targets = sorted(
        str(f)
        for p in (paths or DEFAULT_PATHS)
        for f in ([root / p] if p.endswith(".sql") else (root / p).rglob("*.sql"))
    )
    # the dbt templater must compile the project like dbt itself does in this mode (in core mode
    # from the folder without packages.yml)
    project = DbtRunner(settings, mode).project_dir
    context = {"lint_is_incremental": str(incremental).lower()}
    if not mode.full:
        context[FULL_MODE_VAR] = "false"
        targets = [t.replace(str(root), str(project), 1) for t in targets]
    settings.core_dir.mkdir(parents=True, exist_ok=True)
    override = settings.core_dir / f".sqlfluff-{'incremental' if incremental else 'full'}"
    # the project's .sqlfluff, completed: sqlfluff does not find it above files of a core_dir elsewhere
    config = configparser.ConfigParser()
    config.read(root / ".sqlfluff", encoding="utf-8")
    config["sqlfluff:templater:dbt"].update(
        {"project_dir": str(project), "profiles_dir": str(root), "target_path": str(settings.target_dir)}
    )
    config["sqlfluff:templater:dbt:context"] = context
    with override.open("w", encoding="utf-8") as out:
        config.write(out)
    return [str(sqlfluff), "fix" if fix else "lint", *targets, "--config", str(override), *extra]


def run_passes(
    settings: Settings,
    mode: Mode,
    fix: bool = False,
    paths: list[str] | None = None,
    extra: tuple[str, ...] = (),
    capture: bool = False,
) -> list[subprocess.CompletedProcess[str]]:
    """Both passes against a throwaway warehouse and target."""
    done = []
    with tempfile.TemporaryDirectory(prefix="el-lint-") as tmp:
        isolated = isolated_settings(settings, Path(tmp))
        env = {**DbtRunner(isolated, mode).env(), "DBT_TARGET": isolated.target}
        for incremental in PASSES:
            if not capture:
                print(f"el lint: pass with is_incremental() = {str(incremental).lower()}", flush=True)
            cmd = lint_command(isolated, mode, fix, list(paths or []), incremental, extra)
            done.append(
                subprocess.run(cmd, cwd=settings.project_root, env=env, text=True, capture_output=capture, check=False)
            )
    return done


def lint(settings: Settings, mode: Mode, fix: bool = False, paths: list[str] | None = None) -> int:
    return max(done.returncode for done in run_passes(settings, mode, fix, paths))
