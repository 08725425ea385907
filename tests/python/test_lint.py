"""sqlfluff (dbt templater) finds zero violations in every model, snapshot and singular test, in both
branches of every incremental model, whatever warehouse or target/ the checkout has."""

from __future__ import annotations

import json
from pathlib import Path

from el.lint import PASSES, run_passes
from el.mode import detect
from tests.python.conftest import PROJECT_ROOT
from tests.python.el_helpers import settings_for


def test_every_sql_file_is_lint_clean_in_both_incremental_branches(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    mode = detect(PROJECT_ROOT)
    sql_files = sorted(p for folder in ("models", "tests", "snapshots") for p in (PROJECT_ROOT / folder).rglob("*.sql"))
    passes = run_passes(settings, mode, extra=("--format", "json", "--nofail"), capture=True)
    assert len(passes) == len(PASSES)
    violations = []
    for incremental, done in zip(PASSES, passes, strict=True):
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        linted = {entry["filepath"].rsplit("/", 1)[-1] for entry in report}
        assert linted == {p.name for p in sql_files}, "every SQL file must have been linted"
        violations += [
            (incremental, e["filepath"].rsplit("/", 1)[-1], v["start_line_no"], v["code"], v["description"])
            for e in report
            for v in e["violations"]
        ]
    assert violations == []
    assert not settings.warehouse.exists(), "linting must not create or use the settings' warehouse"
