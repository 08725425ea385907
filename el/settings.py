"""Where things live: every path can be overridden from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    project_root: Path
    warehouse: Path  # DuckDB file that dlt loads into and dbt builds in
    sources_root: Path  # simulated sources of the demo (SQLite shop DB, events store, file drops)
    # dbt's artifacts (manifest, docs site, Elementary report) and logs, and the core-mode project
    # folder; None: target/, logs/ and .dbt_core/ of the project root
    target_dir: Path = field(default=None)  # type: ignore[assignment]
    log_dir: Path = field(default=None)  # type: ignore[assignment]
    core_dir: Path = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        defaults = {"target_dir": "target", "log_dir": "logs", "core_dir": ".dbt_core"}
        for name, folder in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.project_root / folder)

    def as_env(self) -> dict[str, str]:
        """The environment that makes a child `el` process use these settings (inverse of from_env)."""
        return {
            "SHOP_PROJECT_ROOT": str(self.project_root),
            "SHOP_WAREHOUSE": str(self.warehouse),
            "SHOP_SOURCES": str(self.sources_root),
            "SHOP_TARGET_DIR": str(self.target_dir),
            "SHOP_LOG_DIR": str(self.log_dir),
            "SHOP_DBT_CORE_DIR": str(self.core_dir),
        }

    @classmethod
    def from_env(cls) -> Settings:
        root = Path(os.environ.get("SHOP_PROJECT_ROOT", PROJECT_ROOT)).resolve()
        data = root / "data"

        def path(name: str, default: Path) -> Path:
            return Path(os.environ.get(name) or default).resolve()

        return cls(
            project_root=root,
            warehouse=path("SHOP_WAREHOUSE", data / "warehouse.duckdb"),
            sources_root=path("SHOP_SOURCES", data / "sources"),
            target_dir=path("SHOP_TARGET_DIR", root / "target"),
            log_dir=path("SHOP_LOG_DIR", root / "logs"),
            core_dir=path("SHOP_DBT_CORE_DIR", root / ".dbt_core"),
        )
