"""Numbers and paths in the environment: a value that cannot work is a ConfigError naming the variable,
never rounded, clamped or read as something else (nan passed every range check; 0 pages became 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from el.config import ConfigError, SourceConfig
from el.settings import Settings
from el.stream import StreamConfig
from tests.python.conftest import PROJECT_ROOT


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("SHOP_LAG_HOURS", "nan", "is not a finite number"),
        ("SHOP_EVENTS_LAG_HOURS", "inf", "is not a finite number"),
        ("SHOP_EVENTS_MAX_LATENESS_DAYS", "-1", "must be zero or more"),
        ("SHOP_EVENTS_BACKOFF_FACTOR", "fast", "is not a number"),
        ("SHOP_EVENTS_PAGE_SIZE", "0", "must be positive"),
        ("SHOP_EVENTS_PAGE_SIZE", "2.5", "must be a whole number"),
        ("SHOP_EVENTS_PAGE_SIZE", "nan", "is not a finite number"),
        ("SHOP_EVENTS_MAX_ATTEMPTS", "inf", "is not a finite number"),
        ("SHOP_EVENTS_MAX_ATTEMPTS", "0", "must be positive"),
    ],
)
def test_a_source_setting_that_cannot_work_is_refused_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=f"^{name}='{raw}' {message}"):
        SourceConfig.from_env(Settings.under(PROJECT_ROOT, tmp_path))


def test_whole_numbers_are_kept_and_empty_values_read_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.under(PROJECT_ROOT, tmp_path)
    monkeypatch.setenv("SHOP_EVENTS_PAGE_SIZE", "250")
    monkeypatch.setenv("SHOP_EVENTS_MAX_ATTEMPTS", "3.0")
    monkeypatch.setenv("SHOP_LAG_HOURS", "")
    monkeypatch.setenv("SHOP_FILES_DIR", "")  # not the working directory
    config = SourceConfig.from_env(settings)
    assert (config.events_page_size, config.events_max_attempts) == (250, 3)
    assert config.shop_lag_seconds == 6 * 3600
    assert config.files_dir == settings.sources_root / "marketing"


@pytest.mark.parametrize(("raw", "message"), [("0.5", "must be a whole number"), ("inf", "is not a finite number")])
def test_a_stream_batch_size_that_cannot_work_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    monkeypatch.setenv("SHOP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("SHOP_STREAM_MAX_ROWS", raw)
    with pytest.raises(ConfigError, match=f"^SHOP_STREAM_MAX_ROWS='{raw}' {message}"):
        StreamConfig.from_env()
