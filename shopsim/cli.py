"""`shopsim` command: generate simulated days, serve the events API, or run the demo."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from shopsim.api import EventsApi
from shopsim.config import Rates, SimConfig, SourcePaths
from shopsim.simulator import ConfigMismatchError, Simulator


def _config(args: argparse.Namespace) -> SimConfig:
    rates = Rates()
    overrides = {
        name: getattr(args, f"{name}_rate") for name in vars(rates) if getattr(args, f"{name}_rate") is not None
    }
    return SimConfig(
        seed=args.seed,
        start_date=dt.date.fromisoformat(args.start_date),
        scale=args.scale,
        rates=replace(rates, **overrides),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shopsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="simulate the next N days into the sources folder")
    gen.add_argument("--root", type=Path, default=Path("data/sources"))
    gen.add_argument("--days", type=int, default=1)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--scale", type=int, default=200, help="orders per day")
    gen.add_argument("--start-date", default="2026-01-01")
    gen.add_argument("--reset", action="store_true", help="delete the folder first")
    for name in vars(Rates()):
        gen.add_argument(f"--{name.replace('_', '-')}-rate", type=float, default=None)
    serve = sub.add_parser("serve", help="serve the events API of a sources folder")
    serve.add_argument("--root", type=Path, default=Path("data/sources"))
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--fault-rate", type=float, default=0.0)
    serve.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")
    demo = sub.add_parser("demo", help="simulate N days and run the whole pipeline (`el run`) after each")
    demo.add_argument("--days", type=int, default=5)
    demo.add_argument("--scale", type=int, default=200)
    demo.add_argument("--seed", type=int, default=42)
    stream = sub.add_parser("stream", help="publish order-status changes to a Kafka topic (`el stream` reads them)")
    stream.add_argument("--bootstrap-servers", help="broker to publish to (default: SHOP_KAFKA_BOOTSTRAP_SERVERS)")
    stream.add_argument("--broker", action="store_true", help="start a local in-memory Tansu broker and keep it up")
    stream.add_argument("--topic", default="order_status")
    stream.add_argument("--seed", type=int, default=42)
    stream.add_argument("--orders", type=int, default=300)
    stream.add_argument("--days", type=int, default=6)
    stream.add_argument("--duplicate-rate", type=float, default=0.05)
    stream.add_argument("--late-rate", type=float, default=0.05)
    stream.add_argument("--poison", type=int, default=4, help="messages that are not JSON or break the schema")
    stream.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)

    if args.command == "stream":
        from shopsim.stream import stream_command

        return stream_command(args)

    if args.command == "demo":
        from el.settings import Settings
        from shopsim.demo import run_demo

        return run_demo(Settings.from_env(), days=args.days, scale=args.scale, seed=args.seed)

    if args.command == "generate":
        if args.reset and args.root.exists():
            shutil.rmtree(args.root)
        try:
            days = Simulator(args.root, _config(args)).advance(args.days)
        except (ConfigMismatchError, ValueError) as exc:
            print(f"shopsim: {exc}", file=sys.stderr)
            return 2
        print(f"shopsim: simulated {days[0]} .. {days[-1]} into {args.root}")
        return 0

    with EventsApi(SourcePaths(args.root).events_db, port=args.port, fault_rate=args.fault_rate) as api:
        api.server.delay = args.delay
        print(f"shopsim: events API on {api.url}/events (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
