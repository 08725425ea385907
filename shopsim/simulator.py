"""Advances the simulated sources day by day; the same config always yields the same data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from shopsim import events, files, shopdb
from shopsim.clock import day_rng
from shopsim.config import SimConfig, SourcePaths


class ConfigMismatchError(RuntimeError):
    """The folder was generated with another config; mixing them would corrupt the demo."""


class Simulator:
    def __init__(self, root: Path, config: SimConfig) -> None:
        self.paths = SourcePaths(Path(root))
        self.config = config

    def days_generated(self) -> int:
        state = self.paths.state_file
        if not state.exists():
            return 0
        stored = state.read_text(encoding="utf-8").splitlines()
        if SimConfig.from_json(stored[0]) != self.config:
            raise ConfigMismatchError(
                f"{self.paths.root} holds data from another simulator config; use a new folder or --reset"
            )
        return int(stored[1])

    def current_date(self) -> dt.date | None:
        """The last simulated day, or None before the first."""
        done = self.days_generated()
        return self.config.start_date + dt.timedelta(days=done - 1) if done else None

    def advance(self, days: int = 1) -> list[dt.date]:
        """Simulate the next `days` days in every source; returns the dates produced."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        done = self.days_generated()
        produced = []
        shop = shopdb.connect(self.paths.shop_db)
        clicks = events.connect(self.paths.events_db)
        try:
            for day_index in range(done, done + days):
                seed = self.config.seed
                shopdb.generate_day(shop, self.config, day_index, day_rng(seed, "shop", day_index))
                user_ids = [row[0] for row in shop.execute("select customer_id from customers order by 1")]
                events.generate_day(clicks, self.config, day_index, day_rng(seed, "events", day_index), user_ids)
                files.generate_day(self.paths.marketing_dir, self.config, day_index, day_rng(seed, "files", day_index))
                self._save(day_index + 1)
                produced.append(self.config.start_date + dt.timedelta(days=day_index))
        finally:
            shop.close()
            clicks.close()
        return produced

    def _save(self, days_done: int) -> None:
        self.paths.state_file.write_text(f"{self.config.to_json()}\n{days_done}\n", encoding="utf-8")
