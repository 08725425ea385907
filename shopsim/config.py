"""Simulator configuration: seed, calendar, scale and defect rates."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Rates:
    """Fractions (0..1) of rows that carry each defect real sources have."""

    duplicate: float = 0.05  # events delivered twice (same event_id)
    late: float = 0.10  # events received 1..max_late_days after they happened
    update: float = 0.20  # existing shop rows updated on a given day
    late_update: float = 0.05  # updates whose updated_at is back-dated (long transactions)
    restatement: float = 0.30  # chance per day that an earlier spend file is re-dropped
    bad_row: float = 0.02  # rows breaking the source contract
    soft_delete: float = 0.01  # shop rows soft-deleted on a given day

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rate {name}={value} must be between 0 and 1")


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the simulated data; same config -> same data."""

    seed: int = 42
    start_date: dt.date = dt.date(2026, 1, 1)
    scale: int = 200  # orders per day; other volumes scale with it
    max_late_days: int = 5
    drift_day: int = 3  # 0-based day index on which new columns appear
    rates: Rates = field(default_factory=Rates)

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.max_late_days < 1:
            raise ValueError(f"max_late_days must be >= 1, got {self.max_late_days}")

    def to_json(self) -> str:
        data = asdict(self)
        data["start_date"] = self.start_date.isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SimConfig:
        data = json.loads(text)
        data["start_date"] = dt.date.fromisoformat(data["start_date"])
        data["rates"] = Rates(**data["rates"])
        return cls(**data)


@dataclass(frozen=True)
class SourcePaths:
    """Where the simulated sources live under one root folder."""

    root: Path

    @property
    def shop_db(self) -> Path:
        return self.root / "shop.sqlite"

    @property
    def events_db(self) -> Path:
        return self.root / "events.sqlite"

    @property
    def marketing_dir(self) -> Path:
        return self.root / "marketing"

    @property
    def state_file(self) -> Path:
        return self.root / "simulator.json"
