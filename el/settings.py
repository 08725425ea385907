"""Where things live: every path can be overridden from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    project_root: Path
    warehouse: Path  # DuckDB file that dlt loads into and dbt builds in
    sources_root: Path  # simulated sources of the demo (SQLite shop DB, events store, file drops)

    @classmethod
    def from_env(cls) -> Settings:
        root = Path(os.environ.get("SHOP_PROJECT_ROOT", PROJECT_ROOT)).resolve()
        data = root / "data"
        return cls(
            project_root=root,
            warehouse=Path(os.environ.get("SHOP_WAREHOUSE", data / "warehouse.duckdb")).resolve(),
            sources_root=Path(os.environ.get("SHOP_SOURCES", data / "sources")).resolve(),
        )
