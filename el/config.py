"""Source configuration from the environment or dlt's secrets.toml; clear errors when it is wrong."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from el.secrets import secret
from el.settings import Settings

SOURCES = ("shop_db", "events_api", "marketing_files")


class ConfigError(ValueError):
    """The configuration cannot work; the message says which setting and why."""


def float_env(name: str, default: float, *, allow_zero: bool = True) -> float:
    """The number in environment variable `name`, else `default` (also when it is set but empty); a
    ConfigError names the variable when the value is not a finite number, is negative, or is zero where
    `allow_zero` is False."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={raw!r} must be {'zero or more' if allow_zero else 'positive'}")
    return value


def count_env(name: str, default: int) -> int:
    """The whole number of at least 1 in environment variable `name`, else `default`; a ConfigError names
    the variable otherwise (`0`, `2.5`, `-1` and `many` are refused, not rounded or clamped)."""
    value = float_env(name, default, allow_zero=False)
    if value != int(value):
        raise ConfigError(f"{name}={os.environ.get(name)!r} must be a whole number")
    return int(value)


@dataclass(frozen=True)
class SourceConfig:
    shop_db_url: str
    events_url: str | None  # None: not configured (loading events_api fails with a ConfigError)
    files_dir: Path
    shop_lag_seconds: float
    events_lag_seconds: float
    events_max_attempts: int = 8
    events_backoff_factor: float = 0.5
    events_page_size: int = 500
    events_max_lateness_days: float = 30.0
    events_max_clock_skew_minutes: float = 60.0

    @classmethod
    def from_env(cls, settings: Settings) -> SourceConfig:
        url = os.environ.get("SHOP_DB_URL") or secret("sources.shop_db.credentials", ConfigError)
        url = url or f"sqlite:///{settings.sources_root / 'shop.sqlite'}"
        if "://" not in url:
            raise ConfigError(f"SHOP_DB_URL={url!r} is not a database URL (e.g. postgresql://user@host/db)")
        return cls(
            shop_db_url=url,
            events_url=os.environ.get("SHOP_EVENTS_URL") or None,
            files_dir=Path(os.environ.get("SHOP_FILES_DIR") or settings.sources_root / "marketing"),
            shop_lag_seconds=float_env("SHOP_LAG_HOURS", 6.0) * 3600,
            events_lag_seconds=float_env("SHOP_EVENTS_LAG_HOURS", 1.0) * 3600,
            events_max_attempts=count_env("SHOP_EVENTS_MAX_ATTEMPTS", 8),
            events_backoff_factor=float_env("SHOP_EVENTS_BACKOFF_FACTOR", 0.5),
            events_page_size=count_env("SHOP_EVENTS_PAGE_SIZE", 500),
            events_max_lateness_days=float_env("SHOP_EVENTS_MAX_LATENESS_DAYS", 30.0),
            events_max_clock_skew_minutes=float_env("SHOP_EVENTS_MAX_CLOCK_SKEW_MINUTES", 60.0),
        )
