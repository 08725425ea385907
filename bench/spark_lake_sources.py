"""What `register_lake_sources` (macros/spark/lake_sources.sql, on-run-start on Spark) costs per dbt command.

    .venv/bin/python -m bench.spark_lake_sources [--days 3] [--scale 15] [--rounds 3]

Needs the spark extra and Java 17. The simulator's sources (`--days` days at `--scale`) are loaded by el into
a parquet lake in a tmp folder (dlt's filesystem destination, one file per load and table, as `el load` with
DBT_TARGET=spark does); Spark's catalog and tables are in the same tmp folder. The macro then runs as
`dbt run-operation register_lake_sources` (no other hook, no model): once on a fresh catalog (every source
created), then `--rounds` times over the unchanged lake (none re-created). Per command, from dbt's JSON
debug log: the wall time (dbt and Spark session start-up included), the macro's own time (from its first
query to its log line; its first queries also start the Spark session and the catalog), its look-up phase
(from its first catalog look-up to its log line: what checking an unchanged lake costs once Spark is up) and
the queries it sent, split into catalog look-ups (`show tables`, `show tblproperties`) and the rest. Not
part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from el.dbt import DbtRunner
from el.load import run_load
from el.mode import detect
from el.settings import Settings
from shopsim import SimConfig, Simulator
from shopsim.api import EventsApi
from shopsim.config import SourcePaths

FIRST_QUERY = "create or replace temporary view lake_files"
LOGGED = "lake sources: "
CATALOG = ("show tables", "show tblproperties")


@dataclass(frozen=True)
class Round:
    wall: float
    macro: float
    lookups: float  # from the first catalog look-up to the log line: what an unchanged lake costs beyond start-up
    catalog_queries: int
    other_queries: int
    logged: str


def timed_round(runner: DbtRunner, spark_dir: Path) -> Round:
    """One `dbt run-operation register_lake_sources`, read from dbt's JSON debug log on stdout."""
    clock = time.perf_counter()
    done = runner.run(
        ["run-operation", "register_lake_sources", "--debug", "--log-format", "json"],
        capture=True,
        extra_env={"SHOP_SPARK_DIR": str(spark_dir)},
    )
    wall = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"dbt run-operation exited {done.returncode}:\n{done.stdout[-3000:]}")
    started: dt.datetime | None = None
    looked_up: dt.datetime | None = None
    queries: list[str] = []
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        name, ts = event["info"]["name"], dt.datetime.fromisoformat(event["info"]["ts"].replace("Z", "+00:00"))
        if name == "SQLQuery":
            sql = " ".join(event["data"]["sql"].split()).lower()
            if started is None and FIRST_QUERY not in sql:
                continue
            started = started or ts
            if looked_up is None and any(marker in sql for marker in CATALOG):
                looked_up = ts
            queries.append(sql)
        elif name == "JinjaLogInfo" and event["info"]["msg"].startswith(LOGGED) and started is not None:
            catalog = sum(1 for sql in queries if any(marker in sql for marker in CATALOG))
            message = event["info"]["msg"]
            lookups = (ts - (looked_up or ts)).total_seconds()
            return Round(wall, (ts - started).total_seconds(), lookups, catalog, len(queries) - catalog, message)
    raise SystemExit(f"no '{LOGGED}' line after the macro's first query in dbt's log:\n{done.stdout[-3000:]}")


def spread(values: list[float]) -> str:
    return f"min {min(values):.1f} / median {statistics.median(values):.1f} / max {max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3, help="simulated days loaded, one lake file per load")
    parser.add_argument("--scale", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="commands over the unchanged lake (default 3)")
    parser.add_argument("--keep", type=Path, help="work in this (empty) folder and keep it, to inspect")
    args = parser.parse_args()
    if args.rounds < 1 or args.days < 1:
        parser.error("--rounds and --days must be at least 1")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        # everything a run writes, the lake and Spark's catalog in the bench's folder
        settings = replace(Settings.under(root, tmp), target="spark", lake=tmp / "lake")
        sim = Simulator(settings.sources_root, SimConfig(seed=13, scale=args.scale, max_late_days=4))
        for day in range(args.days):
            sim.advance(1)
            with EventsApi(SourcePaths(settings.sources_root).events_db) as api:
                run_load(settings, run_id=f"bench-{day}", events_url=api.url)
        files = sum(1 for _ in settings.lake.rglob("*.parquet"))  # type: ignore[union-attr]
        runner = DbtRunner(settings, detect(root))
        print(f"lake: {files} parquet files ({args.days} loads at scale {args.scale}); load average {load()}")
        runs = [("fresh catalog", timed_round(runner, tmp / "spark"))]
        runs += [(f"unchanged {n + 1}", timed_round(runner, tmp / "spark")) for n in range(args.rounds)]
        for label, run in runs:
            print(
                f"{label:<15} wall {run.wall:5.1f}s  macro {run.macro:5.1f}s  look-ups {run.lookups:4.1f}s  queries: "
                f"{run.catalog_queries} catalog"
                f" + {run.other_queries} other  ({run.logged})"
            )
        unchanged = [run for label, run in runs if label.startswith("unchanged")]
        print(f"unchanged lake, {len(unchanged)} commands: look-ups {spread([r.lookups for r in unchanged])} s,")
        print(f"  macro {spread([r.macro for r in unchanged])} s, wall {spread([r.wall for r in unchanged])} s")
        print(f"load average {load()}")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
