"""Where things live: every path can be overridden from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from el.warehouse import DEFAULT_TARGET, LAKE_ENV, PgConnection, Warehouse, target_engine, warehouse_for

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
    # the dbt target (DBT_TARGET) and, when its type is postgres, the database dlt and dbt write to;
    # `warehouse` then only places dlt's pipeline folders and the lock
    target: str = DEFAULT_TARGET
    postgres: PgConnection | None = None
    # a spark target: the lake root raw lands in as parquet (SHOP_LAKE); `warehouse` is then unused by el/
    lake: Path | None = None

    def __post_init__(self) -> None:
        defaults = {"target_dir": "target", "log_dir": "logs", "core_dir": ".dbt_core"}
        for name, folder in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.project_root / folder)

    @property
    def engine(self) -> str:
        if self.postgres:
            return "postgres"
        return "spark" if self.lake else "duckdb"

    @property
    def warehouse_db(self) -> Warehouse:
        return warehouse_for(self.engine, self.warehouse, self.postgres, self.lake)

    @property
    def pipelines_dir(self) -> Path:
        """dlt's pipeline folders (one per source, its state and packages): next to the warehouse file
        (spark: next to the control file in the lake)."""
        return self.warehouse_db.path.parent / ".dlt_pipelines"

    def dbt_files_env(self) -> dict[str, str]:
        """Where every dbt process of these settings writes its artifacts and its dbt.log."""
        return {"DBT_TARGET_PATH": str(self.target_dir), "DBT_LOG_PATH": str(self.log_dir)}

    def as_env(self) -> dict[str, str]:
        """The environment that makes a child `el` process use these settings (inverse of from_env)."""
        return {
            # a DuckDB target is left to the inherited DBT_TARGET (dev or ci: both read SHOP_WAREHOUSE)
            **({"DBT_TARGET": self.target, **self.postgres.as_env()} if self.postgres else {}),
            **({"DBT_TARGET": self.target, LAKE_ENV: str(self.lake)} if self.lake else {}),
            "SHOP_PROJECT_ROOT": str(self.project_root),
            "SHOP_WAREHOUSE": str(self.warehouse),
            "SHOP_SOURCES": str(self.sources_root),
            "SHOP_TARGET_DIR": str(self.target_dir),
            "SHOP_LOG_DIR": str(self.log_dir),
            "SHOP_DBT_CORE_DIR": str(self.core_dir),
        }

    @classmethod
    def under(cls, project_root: Path, folder: Path) -> Settings:
        """The project at `project_root`, with everything a run writes under `folder`: the warehouse in
        wh/ (its neighbours - dlt's pipelines, metrics/, lineage/, the lock - with it), the simulated
        sources in sources/, dbt's target/ and logs/, and the core-mode project in dbt_core/. For tests
        and benchmarks, which must not touch the project's data/, target/, logs/ or .dbt_core/."""
        return cls(
            project_root,
            folder / "wh" / "warehouse.duckdb",
            folder / "sources",
            target_dir=folder / "target",
            log_dir=folder / "logs",
            core_dir=folder / "dbt_core",
        )

    @classmethod
    def from_env(cls) -> Settings:
        root = Path(os.environ.get("SHOP_PROJECT_ROOT", PROJECT_ROOT)).resolve()
        data = root / "data"

        def path(name: str, default: Path) -> Path:
            return Path(os.environ.get(name) or default).resolve()

        target = os.environ.get("DBT_TARGET") or DEFAULT_TARGET
        engine = target_engine(root, target)
        postgres = PgConnection.from_env() if engine == "postgres" else None
        return cls(
            target=target,
            postgres=postgres,
            lake=path(LAKE_ENV, data / "lake") if engine == "spark" else None,
            project_root=root,
            warehouse=path("SHOP_WAREHOUSE", data / "warehouse.duckdb"),
            sources_root=path("SHOP_SOURCES", data / "sources"),
            target_dir=path("SHOP_TARGET_DIR", root / "target"),
            log_dir=path("SHOP_LOG_DIR", root / "logs"),
            core_dir=path("SHOP_DBT_CORE_DIR", root / ".dbt_core"),
        )
