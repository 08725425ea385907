"""Daily marketing spend file drops (CSV), with restatements of earlier days."""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from pathlib import Path

from shopsim.clock import day_start
from shopsim.config import SimConfig

CAMPAIGNS = {
    "google_ads": ["brand_search", "shopping"],
    "meta_ads": ["prospecting", "retargeting"],
    "tiktok_ads": ["awareness"],
    "email": ["newsletter", "abandoned_cart"],
    "affiliate": ["partners"],
}
BASE_COLUMNS = ["spend_date", "channel", "campaign", "spend", "currency", "impressions", "clicks"]
BAD_KINDS = ["null_key", "negative_amount", "type_drift"]


def file_for(directory: Path, day: dt.date) -> Path:
    return directory / f"spend_{day.isoformat()}.csv"


def _touch(path: Path, moment: dt.datetime) -> None:
    stamp = moment.replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))


def _write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def generate_day(directory: Path, config: SimConfig, day_index: int, rng: random.Random) -> None:
    """Drop the spend file of the day (late evening) and sometimes restate an earlier day."""
    directory.mkdir(parents=True, exist_ok=True)
    day = config.start_date + dt.timedelta(days=day_index)
    drifted = day_index >= config.drift_day
    columns = BASE_COLUMNS + (["conversions"] if drifted else [])
    rows = []
    for channel, campaigns in CAMPAIGNS.items():
        for campaign in campaigns:
            impressions = rng.randint(1_000, 50_000)
            clicks = int(impressions * rng.uniform(0.005, 0.05))
            row = {
                "spend_date": day.isoformat(),
                "channel": channel,
                "campaign": campaign,
                "spend": f"{rng.uniform(20, 900):.2f}",
                "currency": "USD",
                "impressions": str(impressions),
                "clicks": str(clicks),
            }
            if drifted:
                row["conversions"] = str(int(clicks * rng.uniform(0.01, 0.1)))
            if rng.random() < config.rates.bad_row:
                kind = rng.choice(BAD_KINDS)
                if kind == "null_key":
                    row["channel"] = ""
                elif kind == "negative_amount":
                    row["spend"] = f"-{row['spend']}"
                else:
                    row["spend"] = "n/a"
            rows.append(row)
    path = file_for(directory, day)
    _write(path, columns, rows)
    _touch(path, day_start(day) + dt.timedelta(hours=23))

    if day_index > 0 and rng.random() < config.rates.restatement:
        back = rng.randint(1, min(3, day_index))
        _restate(
            file_for(directory, day - dt.timedelta(days=back)), rng, day_start(day) + dt.timedelta(hours=23, minutes=30)
        )


def _restate(path: Path, rng: random.Random, moment: dt.datetime) -> None:
    """Re-drop an earlier day's file with corrected spend (same rows, new values, new mtime)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        try:
            spend = float(row["spend"])
        except ValueError:
            continue
        row["spend"] = f"{abs(spend) * rng.uniform(0.9, 1.1):.2f}"
    _write(path, columns, rows)
    _touch(path, moment)
