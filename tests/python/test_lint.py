"""sqlfluff (dbt templater) finds zero violations in every model, snapshot and singular test."""

from __future__ import annotations

import json
import subprocess

from el.dbt import DbtRunner
from el.lint import lint_command
from el.mode import detect
from el.settings import Settings
from tests.python.conftest import PROJECT_ROOT


def test_every_sql_file_is_lint_clean() -> None:
    settings = Settings.from_env()
    mode = detect(PROJECT_ROOT)
    sql_files = sorted(p for folder in ("models", "tests", "snapshots") for p in (PROJECT_ROOT / folder).rglob("*.sql"))
    done = subprocess.run(
        lint_command(settings, mode, fix=False, paths=[], extra=("--format", "json", "--nofail")),
        cwd=PROJECT_ROOT,
        env=DbtRunner(settings, mode).env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    linted = {entry["filepath"].rsplit("/", 1)[-1] for entry in report}
    assert linted == {p.name for p in sql_files}, "every SQL file must have been linted"
    violations = [(e["filepath"], v["code"], v["description"]) for e in report for v in e["violations"]]
    assert violations == []
