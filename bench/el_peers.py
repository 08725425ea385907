"""EL PostgreSQL -> DuckDB: the project against the limit and its peers, in one run.

    python -m bench.el_peers --rows 1000000 --rounds 3 [--rows 5000000] [--contenders limit,copy,...]
    python -m bench.el_peers --rows 1000000 --fixed-cost

Fills an `order_items` table (8 columns: integers, numeric(12,2), timestamps) in a scratch database on
the loopback PostgreSQL, then per round times every contender, each in its own process into a fresh
DuckDB file (peak memory = the largest RSS of that process and its children):
  limit        DuckDB's postgres extension: `create table as select * from` the attached table
  copy         COPY (select ...) TO STDOUT (csv) piped into DuckDB read_csv (the earlier "limit")
  project      `el load`'s shop DB path: the direct path when the extension loads (else dlt)
  project_dlt  the project's dlt path (connectorx Arrow stream, guard, parquet load files)
  ingestr      ingestr 0.14.155 (the last dlt-based release), connectorx backend
  sling        sling 1.4.11 (the binary of the `sling-linux-amd64` wheel; DuckDB CLI 1.5.5 of `duckdb-cli`)
Where the direct path's time goes against the limit (--contenders limit,copy,project,as_is,casts,stamp,lineage):
the limit's `create table as` in the project's own duckdb, then adding, one at a time, what the direct path
writes beyond it: as_is (no change), casts (the raw types), stamp (+ `_extracted_at`), lineage (+ the two
constant strings `_source`, `_dlt_load_id`: the direct path's whole select list).
Peers and the limit's extension are installed into throwaway virtualenvs under the cache folder
(--venvs, default ~/.cache/shop-elt-bench/venvs), never into the project's environment. Prints per
round the ratio of each contender's rows/s to COPY's in the same round, then min/median/max.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import psycopg

from bench.el_throughput import FILL, copy_limit
from shopsim.pg import scratch_database

PEERS = {  # contender -> packages of its throwaway virtualenv (exact pins)
    "limit": ["duckdb==1.5.5", "duckdb-extension-postgres==1.5.5"],
    "ingestr": ["ingestr==0.14.155", "connectorx==0.4.6"],
    # sling drives the DuckDB CLI, which it would download at run time (and the CLI its json extension):
    # wheels ship both, and the extensions are put where the CLI looks under the peer's own HOME
    "sling": [
        "sling-linux-amd64==1.4.11",
        "duckdb-cli==1.5.5",
        "duckdb-extension-json==1.5.5",
        "duckdb-extension-parquet==1.5.5",
    ],
}
CONTENDERS = ["limit", "copy", "project", "project_dlt", "ingestr", "sling"]
ANATOMY = ["as_is", "casts", "stamp", "lineage"]  # not run unless named in --contenders

LIMIT_SCRIPT = """
import os, sys, duckdb, duckdb_extension_postgres as p
src = os.path.join(os.path.dirname(p.__file__), "extensions", "v" + duckdb.__version__, "postgres.duckdb_extension")
link = os.path.join(sys.argv[3], "postgres_scanner.duckdb_extension")
os.symlink(src, link)
conn = duckdb.connect(sys.argv[2])
conn.execute("set autoinstall_known_extensions = false")
conn.execute(f"load '{link}'")
conn.execute(f"attach '{sys.argv[1]}' as pg (type postgres, read_only)")
conn.execute("create table order_items as select * from pg.public.order_items")
print(conn.execute("select count(*) from order_items").fetchone()[0])
"""


def peer_env(**extra: str) -> dict[str, str]:
    """The environment of a peer's process: nothing of the project's on its path."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def peer_venv(name: str, root: Path) -> Path:
    """The throwaway virtualenv of a peer (created once, reused by later runs)."""
    folder = root / name
    stamp = folder / "installed.txt"
    if not stamp.exists() or stamp.read_text() != "\n".join(PEERS[name]):
        shutil.rmtree(folder, ignore_errors=True)
        venv.create(folder, with_pip=True)
        subprocess.run([str(folder / "bin" / "pip"), "install", "-q", *PEERS[name]], check=True, env=peer_env())
        stamp.write_text("\n".join(PEERS[name]))
    return folder


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")
    return done.stdout


def _count(db: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]


def run_limit(url: str, workdir: Path, venvs: Path) -> int:
    python = peer_venv("limit", venvs) / "bin" / "python"
    command = [str(python), "-c", LIMIT_SCRIPT, url, str(workdir / "w.duckdb"), str(workdir)]
    return int(_run(command, peer_env()).split()[-1])


def run_project(url: str, workdir: Path, venvs: Path) -> int:
    import datetime as dt

    from el.contracts import SHOP_CONTRACTS
    from el.sources import shop_db_direct as direct

    try:
        with direct.connect(workdir / "w.duckdb", url) as conn:
            now = dt.datetime.now(dt.UTC)
            return direct.load_table(conn, "order_items", SHOP_CONTRACTS["order_items"], now, 0).rows_loaded
    except direct.DirectUnavailableError as exc:
        print(f"project: path dlt ({exc})", file=sys.stderr)
        return run_project_dlt(url, workdir, venvs)


def run_project_dlt(url: str, workdir: Path, venvs: Path) -> int:
    from bench.el_throughput import project_loader

    return project_loader(url, workdir)


def run_ingestr(url: str, workdir: Path, venvs: Path) -> int:
    folder = peer_venv("ingestr", venvs)
    db = workdir / "w.duckdb"
    env = peer_env(INGESTR_DISABLE_TELEMETRY="1")
    command = [str(folder / "bin" / "ingestr"), "ingest", "--source-uri", url, "--source-table", "public.order_items"]
    command += ["--dest-uri", f"duckdb:///{db}", "--dest-table", "raw.order_items", "--yes"]
    command += ["--sql-backend", "connectorx"]
    _run(command, env)
    return _count(db, "raw.order_items")


def _duckdb_home(folder: Path, version: str) -> Path:
    """A HOME whose ~/.duckdb/extensions holds the packaged extensions, so the CLI downloads none."""
    home = folder / "home"
    target = home / ".duckdb" / "extensions" / f"v{version}" / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    for packaged in folder.glob(
        f"lib/python*/site-packages/duckdb_extension_*/extensions/v{version}/*.duckdb_extension"
    ):
        link = target / packaged.name
        if not link.exists():
            link.symlink_to(packaged)
    return home


def run_sling(url: str, workdir: Path, venvs: Path) -> int:
    folder = peer_venv("sling", venvs)
    binaries = sorted(folder.glob("lib/python*/site-packages/sling_linux_amd64/bin/sling*"))
    if not binaries:
        raise RuntimeError(f"no sling binary in {folder}")
    db = workdir / "w.duckdb"
    plain = url + ("&" if "?" in url else "?") + "sslmode=disable"  # the loopback server has no TLS
    env = peer_env(
        PG_SRC=plain,
        DUCK_DST=f"duckdb://{db}?copy_method=csv_files",
        SLING_HOME_DIR=str(workdir),
        SLING_DISABLE_TELEMETRY="true",
    )
    env["DUCKDB_PATH"] = str(folder / "bin" / "duckdb")
    env["DUCKDB_VERSION"] = "1.5.5"
    env["HOME"] = str(_duckdb_home(folder, "1.5.5"))
    command = [str(binaries[0]), "run", "--src-conn", "PG_SRC", "--src-stream", "public.order_items"]
    command += ["--tgt-conn", "DUCK_DST", "--tgt-object", "main.order_items", "--mode", "full-refresh"]
    _run(command, env)
    return _count(db, "main.order_items")


def run_copy(url: str, workdir: Path, venvs: Path) -> int:
    return copy_limit(url, workdir)


def _anatomy(url: str, workdir: Path, step: str) -> int:
    """`create table as` from the attached table with the direct path's select list up to `step`."""
    import datetime as dt

    from el.contracts import SHOP_CONTRACTS
    from el.sources import shop_db_direct as direct

    with direct.connect(workdir / "w.duckdb", url) as conn:
        columns = direct.source_columns(conn, "order_items")
        select = "s.*" if step == "as_is" else direct._select_list(SHOP_CONTRACTS["order_items"], columns)
        if step in ("stamp", "lineage"):
            select += f", cast('{dt.datetime.now(dt.UTC).isoformat()}' as timestamptz) as _extracted_at"
        if step == "lineage":
            select += f", 'shop_db.order_items' as _source, '{direct.new_load_id()}' as _dlt_load_id"
        conn.execute(f'create table order_items as select {select} from {direct.SOURCE_ALIAS}."order_items" as s')
        return conn.execute("select count(*) from order_items").fetchone()[0]  # type: ignore[index]


RUNNERS = {
    "limit": run_limit,
    "copy": run_copy,
    "project": run_project,
    "project_dlt": run_project_dlt,
    "ingestr": run_ingestr,
    "sling": run_sling,
    **{step: (lambda url, workdir, venvs, step=step: _anatomy(url, workdir, step)) for step in ANATOMY},
}


def fixed_cost(url: str) -> None:
    """Per-load cost of the project's two paths at this size: a full load, then a load with nothing new
    (the fixed cost every table pays on every run), with the direct path's steps."""
    import datetime as dt

    from el.contracts import SHOP_CONTRACTS
    from el.sources import shop_db_direct as direct

    contract = SHOP_CONTRACTS["order_items"]
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in ("full", "nothing new", "nothing new"):
            start = time.perf_counter()
            with direct.connect(Path(tmp) / "w.duckdb", url) as conn:
                opened = time.perf_counter() - start
                result = direct.load_table(conn, "order_items", contract, dt.datetime.now(dt.UTC), 0)
            steps = ", ".join(f"{name} {seconds:.3f}" for name, seconds in result.phases.items())
            print(
                f"direct {attempt:12s} {time.perf_counter() - start:6.3f}s  rows {result.rows_loaded:,}  "
                f"open+load extension+attach {opened:.3f}  {steps}",
                flush=True,
            )
    from el.load import Loader
    from el.settings import Settings
    from el.sources.shop_db import shop_resources

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.under(Path(__file__).resolve().parents[1], Path(tmp))
        loader = Loader(settings, "bench", progress="log")
        for attempt in ("full", "nothing new", "nothing new"):
            start = time.perf_counter()
            (resource_,) = shop_resources(url, dt.datetime.now(dt.UTC), 0, tables=("order_items",))
            rows = loader.run("shop_db", "order_items", resource_).rows_loaded
            print(f"dlt    {attempt:12s} {time.perf_counter() - start:6.3f}s  rows {rows:,}", flush=True)


def child(contender: str, url: str, venvs: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows = RUNNERS[contender](url, Path(tmp), Path(venvs))
        seconds = time.perf_counter() - start
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps({"contender": contender, "rows": rows, "seconds": seconds, "peak_mb": peak_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--venvs", default=str(Path.home() / ".cache" / "shop-elt-bench" / "venvs"))
    parser.add_argument("--fixed-cost", action="store_true", help="per-load cost of the project's paths")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    chosen = [c for c in CONTENDERS + ANATOMY if c in args.contenders.split(",")]
    if "copy" not in chosen:
        chosen.insert(0, "copy")
    venvs = Path(args.venvs)
    venvs.mkdir(parents=True, exist_ok=True)
    for name in PEERS:  # installed before any timing
        if name in chosen:
            peer_venv(name, venvs)
    for rows in args.rows or [1_000_000]:
        with scratch_database(prefix="bench") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(FILL.format(rows=rows))
                conn.execute("alter table order_items add primary key (order_item_id)")
                conn.execute("vacuum analyze order_items")
            if args.fixed_cost:
                fixed_cost(url)
                continue
            ratios: dict[str, list[float]] = {c: [] for c in chosen}
            seconds: dict[str, list[float]] = {c: [] for c in chosen}
            peaks: dict[str, list[float]] = {c: [] for c in chosen}
            for round_ in range(args.rounds):
                results = {}
                for contender in chosen:
                    command = [sys.executable, "-m", "bench.el_peers", "--child", contender, url, str(venvs)]
                    done = subprocess.run(command, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        print(f"{rows:,} round {round_ + 1} {contender}: failed: {done.stderr[-800:]}", flush=True)
                        continue
                    results[contender] = json.loads(done.stdout.strip().splitlines()[-1])
                if "copy" not in results:
                    continue
                copy_rate = results["copy"]["rows"] / results["copy"]["seconds"]
                for contender, result in results.items():
                    assert result["rows"] == rows, f"{contender} loaded {result['rows']} of {rows} rows"
                    ratio = result["rows"] / result["seconds"] / copy_rate
                    ratios[contender].append(ratio)
                    seconds[contender].append(result["seconds"])
                    peaks[contender].append(result["peak_mb"])
                    of_limit = ""
                    if "limit" in results:
                        limit_rate = results["limit"]["rows"] / results["limit"]["seconds"]
                        of_limit = f"  {result['rows'] / result['seconds'] / limit_rate:5.2f}x limit"
                    print(
                        f"{rows:>9,} round {round_ + 1} {contender:12s} {result['seconds']:7.2f}s  "
                        f"{ratio:5.2f}x copy{of_limit}  peak {result['peak_mb']:,.0f} MB",
                        flush=True,
                    )
            print(f"\n{rows:,} rows, {args.rounds} rounds: ratio to COPY min/median/max, seconds median, peak MB max")
            for contender in chosen:
                if ratios[contender]:
                    r = ratios[contender]
                    print(
                        f"| {contender} | {min(r):.2f}/{statistics.median(r):.2f}/{max(r):.2f} | "
                        f"{statistics.median(seconds[contender]):.2f} s | {max(peaks[contender]):,.0f} MB |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
