"""dlt's secrets for `el`: the project's `.dlt/secrets.toml` whatever the working directory, and a
secrets file that cannot be read is a clear error, never "not set" (which fell back to the demo's
SQLite shop and a localhost warehouse)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.python.conftest import PROJECT_ROOT

SHOW_URL = (
    "import sys; from pathlib import Path; from el.config import SourceConfig; from el.settings import Settings; "
    "print(SourceConfig.from_env(Settings.under(Path(sys.argv[1]), Path(sys.argv[2]))).shop_db_url)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DLT_PROJECT_DIR", "SHOP_DB_URL", "SHOP_PROJECT_ROOT")}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), **extra}


def _show_url(tmp_path: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SHOW_URL, str(PROJECT_ROOT), str(tmp_path / "run")],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _project_with_secrets(tmp_path: Path, text: str) -> Path:
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "secrets.toml").write_text(text)
    return project


def test_the_project_secrets_are_read_from_any_working_directory(tmp_path: Path) -> None:
    project = _project_with_secrets(tmp_path, '[sources.shop_db]\ncredentials = "postgresql://shop@db.internal/shop"\n')
    elsewhere = tmp_path / "elsewhere"  # cron's, a service's or a worker's working directory
    elsewhere.mkdir()
    done = _show_url(tmp_path, elsewhere, SHOP_PROJECT_ROOT=str(project))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "postgresql://shop@db.internal/shop"
    # DLT_PROJECT_DIR, when set, wins; a secrets file in the working directory alone is not read
    done = _show_url(tmp_path, project, DLT_PROJECT_DIR=str(elsewhere))
    assert done.stdout.strip().splitlines()[-1] == f"sqlite:///{tmp_path / 'run' / 'sources' / 'shop.sqlite'}"


def test_an_unreadable_secrets_file_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    project = _project_with_secrets(tmp_path, '[sources.shop_db\ncredentials = "postgresql://shop@db.internal/shop"\n')
    done = _show_url(tmp_path, tmp_path, DLT_PROJECT_DIR=str(project))
    assert done.returncode != 0
    assert "ConfigError: dlt's config/secrets cannot be read (looking for sources.shop_db.credentials)" in done.stderr
    assert "sqlite" not in done.stdout
    # through the command: one line and exit 2, nothing loaded
    settings_env = {
        "SHOP_WAREHOUSE": str(tmp_path / "wh" / "warehouse.duckdb"),
        "SHOP_SOURCES": str(tmp_path / "sources"),
        "SHOP_TARGET_DIR": str(tmp_path / "target"),
        "SHOP_LOG_DIR": str(tmp_path / "logs"),
        "SHOP_DBT_CORE_DIR": str(tmp_path / "dbt_core"),
    }
    load = subprocess.run(
        [sys.executable, "-m", "el.cli", "load", "shop_db"],
        cwd=tmp_path,
        env=_env(DLT_PROJECT_DIR=str(project), **settings_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert load.returncode == 2, load.stdout + load.stderr
    assert load.stderr.startswith("el load: dlt's config/secrets cannot be read"), load.stderr
    assert "Traceback" not in load.stderr
    assert not (tmp_path / "wh" / "warehouse.duckdb").exists()


def test_a_broken_config_toml_is_named_in_the_error(tmp_path: Path) -> None:
    """dlt reads .dlt/config.toml with the secrets: a typo there fails the lookup too, and says so."""
    project = _project_with_secrets(tmp_path, '[sources.shop_db]\ncredentials = "postgresql://shop@db.internal/shop"\n')
    (project / ".dlt" / "config.toml").write_text("[runtime\nlog_level = 'INFO'\n")
    done = _show_url(tmp_path, tmp_path, DLT_PROJECT_DIR=str(project))
    assert done.returncode != 0
    assert "ConfigError: dlt's config/secrets cannot be read (looking for sources.shop_db.credentials)" in done.stderr
    assert "config.toml" in done.stderr.splitlines()[-1]
    assert "sqlite" not in done.stdout


def test_alerts_read_the_webhook_from_the_secrets_and_say_why_when_they_cannot(tmp_path: Path) -> None:
    """An alert is printed even when the secrets are broken, with the reason the webhook is not used."""

    def webhook(name: str, text: str) -> subprocess.CompletedProcess[str]:
        project = _project_with_secrets(tmp_path / name, text)
        return subprocess.run(
            [sys.executable, "-c", "from el.alerts import webhook_url; print(webhook_url())"],
            cwd=tmp_path,
            env={**_env(DLT_PROJECT_DIR=str(project)), "SHOP_ALERT_WEBHOOK_URL": ""},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = webhook("good", '[alerts]\nwebhook_url = "https://hooks.example.com/T1"\n')
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "https://hooks.example.com/T1"
    broken = webhook("broken", '[alerts\nwebhook_url = "https://hooks.example.com/T1"\n')
    assert broken.returncode == 0, broken.stderr[-2000:]
    assert broken.stdout.strip().splitlines()[-1] == "None"
    assert "el alerts: dlt's config/secrets cannot be read (looking for alerts.webhook_url)" in broken.stderr
    assert broken.stderr.rstrip().endswith("; no webhook")
