"""Time helpers shared by the generators: one text format, seeded randomness per day."""

from __future__ import annotations

import datetime as dt
import random

TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def fmt(ts: dt.datetime) -> str:
    """Timestamp text as SQLAlchemy's SQLite DATETIME type stores and reads it."""
    return ts.strftime(TS_FORMAT)


def parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, TS_FORMAT)


def random_time(rng: random.Random, day: dt.date) -> dt.datetime:
    return day_start(day) + dt.timedelta(seconds=rng.uniform(0, 86_399))


def day_rng(seed: int, stream: str, day_index: int) -> random.Random:
    """An independent, reproducible random stream per (seed, source, day)."""
    return random.Random(f"{seed}:{stream}:{day_index}")
