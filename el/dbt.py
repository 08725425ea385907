"""Runs dbt on this project in the detected mode (see el.mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from el.dbt_batch import DbtBatch, interrupt_and_wait, needs_forwarding
from el.mode import FULL_MODE_VAR, Mode
from el.settings import Settings
from el.warehouse import LAKE_ENV

# What dbt reads from the project root; the core-mode project links to exactly these.
DBT_ENTRIES = (
    "dbt_project.yml",
    "profiles.yml",
    "models",
    "macros",
    "seeds",
    "snapshots",
    "tests",
    "analyses",
)
CORE_DIR = ".dbt_core"


def dbt_executable() -> Path:
    return Path(sys.executable).with_name("dbt")


def core_project(root: Path, shadow: Path | None = None) -> Path:
    """A project folder (`shadow`, default root/.dbt_core) without packages.yml whose entries link
    to the real project.

    dbt refuses to run while packages.yml lists packages that are not installed; core mode
    therefore runs the very same files from a folder that does not list them.
    Several processes build it at once (the Airflow scheduler parsing the DAG file, `el lint`, tests),
    so a link that is right is left alone and a wrong or missing one is replaced atomically: a dbt
    reading the folder never finds an entry missing.
    """
    shadow = shadow or root / CORE_DIR
    shadow.mkdir(parents=True, exist_ok=True)
    for name in DBT_ENTRIES:
        link, target = shadow / name, root / name
        if not target.exists():
            if link.is_symlink() or link.exists():
                link.unlink(missing_ok=True)
            continue
        if link.is_symlink() and os.readlink(link) == str(target):
            continue
        fresh = shadow / f".{name}.{os.getpid()}.{threading.get_ident()}"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(target)
        try:
            os.replace(fresh, link)  # atomic; a directory (not a link) in the way is an error, as before
        except OSError:
            fresh.unlink(missing_ok=True)
            raise
    return shadow


def split_vars(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """dbt arguments without `--vars`, and the vars it gave (YAML). dbt keeps only the last `--vars`,
    so a caller's (`el dbt test --vars ...`) is merged into the one the runner passes, not lost."""
    rest: list[str] = []
    given: dict[str, Any] = {}
    items = iter(args)
    for arg in items:
        if arg == "--vars" or arg.startswith("--vars="):
            text = arg.split("=", 1)[1] if "=" in arg else next(items, "")
            parsed = yaml.safe_load(text) if text.strip() else {}
            if not isinstance(parsed, dict):
                raise ValueError(f"--vars must be a YAML mapping, got {text!r}")
            given.update(parsed)
        else:
            rest.append(arg)
    return rest, given


@dataclass(frozen=True)
class DbtRunner:
    settings: Settings
    mode: Mode

    @property
    def project_dir(self) -> Path:
        root = self.settings.project_root
        return root if self.mode.full else core_project(root, self.settings.core_dir)

    def vars(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        merged = dict(extra or {})
        if not self.mode.full:
            merged[FULL_MODE_VAR] = False
        return merged

    def command(self, args: list[str], extra_vars: dict[str, Any] | None = None) -> list[str]:
        args, given = split_vars(args)
        extra_vars = {**given, **(extra_vars or {})}
        cmd = [
            str(dbt_executable()),
            *args,
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.settings.project_root),
        ]
        if not self.mode.full:
            # dbt_project.yml configures the Elementary package, absent in core mode: expected, not news
            cmd += ["--warn-error-options", json.dumps({"silence": ["UnusedResourceConfigPath"]})]
        merged = self.vars(extra_vars)
        if merged:
            cmd += ["--vars", json.dumps(merged, sort_keys=True)]
        return cmd

    def env(self) -> dict[str, str]:
        """Environment of every dbt-templated process (dbt, sqlfluff's dbt templater, edr). Both open
        the warehouse, so its folder is created here."""
        self.settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                **self.settings.dbt_files_env(),
                "SHOP_WAREHOUSE": str(self.settings.warehouse),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            }
        )
        if self.settings.postgres:  # the target and the database dlt loaded into
            # PGTZ: libpq sessions in UTC, like the DuckDB profile's TimeZone setting
            env.update({"DBT_TARGET": self.settings.target, "PGTZ": "UTC", **self.settings.postgres.as_env()})
        if self.settings.lake:  # the spark target and the lake dlt wrote raw to (its sources read the files)
            env.update({"DBT_TARGET": self.settings.target, LAKE_ENV: str(self.settings.lake)})
        return env

    def edr(self, command: str, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run `edr <command> <args>` on this project (its output to the terminal). edr runs dbt in an
        internal project of its own; that project's artifacts go to target/edr/dbt/, edr's own files and
        its dbt log (edr sets DBT_LOG_PATH to --target-path itself) to target/edr/, and edr runs in
        target/edr/ (it makes an empty `edr_target` folder in its working directory whatever --target-path
        says; seen in the edr monitor test). With this project's DBT_TARGET_PATH they overwrote
        target/manifest.json, run_results.json and the partial-parse file (the next dbt run re-parsed
        everything)."""
        root = self.settings.project_root
        edr = Path(sys.executable).with_name("edr")
        target = self.settings.target_dir / "edr"
        target.mkdir(parents=True, exist_ok=True)
        argv = [str(edr), command, *args, "--project-dir", str(self.project_dir), "--profiles-dir", str(root)]
        argv += ["--config-dir", str(root / ".edr"), "--target-path", str(target)]  # .edr: no usage tracking
        env = self.env()
        env["DBT_TARGET_PATH"] = str(target / "dbt")
        return subprocess.run(argv, env=env, cwd=target, check=False, timeout=timeout)

    def run(
        self,
        args: list[str],
        extra_vars: dict[str, Any] | None = None,
        capture: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`dbt <args>` to its end. Stopped (Ctrl-C, or SIGTERM as el turns it into one), dbt is interrupted
        as Ctrl-C would (it cancels its queries) and waited for, not killed outright as subprocess.run would."""
        cmd = self.command(args, extra_vars)
        pipe = subprocess.PIPE if capture else None
        with subprocess.Popen(
            cmd,
            cwd=self.settings.project_root,
            env={**self.env(), **(extra_env or {})},
            text=True,
            stdout=pipe,
            stderr=pipe,
        ) as process:
            try:
                out, err = process.communicate()
            except KeyboardInterrupt as stop:
                interrupt_and_wait(process, forward=needs_forwarding(stop))
                raise
        return subprocess.CompletedProcess(cmd, process.returncode, out, err)

    def batch(
        self,
        commands: list[list[str]],
        extra_vars: dict[str, Any] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> DbtBatch:
        """`commands` in one dbt process that parses the project once (see el.dbt_batch), with the
        arguments, environment and folder `run` would give each. The shared parse gets the first
        command's `--quiet`; without it, its console shows warnings and errors only (no "Running with
        dbt=" banner of its own: the terminal shows one per command, as with one process each), while
        dbt.log keeps its debug lines. A log level the user set (DBT_LOG_LEVEL, DBT_LOG_LEVEL_FILE) wins."""
        argv = [self.command(args, extra_vars)[1:] for args in commands]
        env = {**self.env(), **(extra_env or {})}
        if "--quiet" in commands[0]:
            quiet = ["--quiet"]
        elif "DBT_LOG_LEVEL" in env:
            quiet = []
        else:
            quiet = ["--log-level", "warn", *([] if "DBT_LOG_LEVEL_FILE" in env else ["--log-level-file", "debug"])]
        parse = self.command(["parse", *quiet], extra_vars)[1:]
        return DbtBatch(argv, parse, env, str(self.settings.project_root))
