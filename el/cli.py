"""`el` command: load sources, run dbt in the right mode, lint."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from el.dbt import DbtRunner, dbt_executable
from el.dbt_batch import STOPPED_BY_SIGTERM
from el.mode import Mode, detect
from el.settings import Settings


def resolve_mode(settings: Settings, try_deps: bool, say: TextIO | None = None) -> Mode:
    """The mode (trying `dbt deps` first when `try_deps`), said in one line on `say` (stdout by default)."""
    root = settings.project_root
    mode = detect(root, dbt_executable() if try_deps else None, root, settings.dbt_files_env())
    print(mode.summary(), file=say or sys.stdout, flush=True)
    return mode


def cmd_mode(args: argparse.Namespace, settings: Settings) -> int:
    resolve_mode(settings, try_deps=args.deps)
    return 0


def cmd_dbt(args: argparse.Namespace, settings: Settings) -> int:
    """dbt writes the warehouse: it takes the same lock as `el run`/`el load`, so neither starts mid-build."""
    from el.lock import AlreadyRunningError, exclusive
    from el.warehouse import WarehouseError

    # the mode line on stderr: stdout is dbt's own (`el dbt ls --output json | jq`)
    runner = DbtRunner(settings, resolve_mode(settings, try_deps=False, say=sys.stderr))
    try:
        with exclusive(settings.warehouse_db, f"el dbt {' '.join(args.dbt_args)}".strip()):
            return runner.run(args.dbt_args).returncode
    except (AlreadyRunningError, WarehouseError) as exc:
        print(f"el dbt: {exc}", file=sys.stderr)
        return 2


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from el.config import ConfigError
    from el.load import LoadError, run_load
    from el.lock import AlreadyRunningError
    from el.warehouse import WarehouseError

    try:
        metrics = run_load(settings, args.sources or None, args.run_id)
    except (ConfigError, LoadError, AlreadyRunningError, WarehouseError) as exc:
        print(f"el load: {exc}", file=sys.stderr)
        return 2
    rows = sum(m.rows_loaded for m in metrics)
    rejects = sum(m.rejects for m in metrics)
    print(f"el load: run {metrics[0].run_id if metrics else '-'}: {rows} rows, {rejects} rejects")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from el.load import new_run_id
    from el.lock import AlreadyRunningError
    from el.pipeline import PipelineRun, RunOptions
    from el.warehouse import WarehouseError

    options = RunOptions(
        sources=tuple(args.sources or ()),
        full_refresh=args.full_refresh,
        date_from=args.date_from,
        date_to=args.date_to,
    )
    if options.date_to and not options.date_from:
        print("el run: --to needs --from", file=sys.stderr)
        return 2
    if options.date_from and options.date_to and options.date_to < options.date_from:
        print("el run: --to is before --from", file=sys.stderr)
        return 2
    run = PipelineRun(settings, resolve_mode(settings, try_deps=args.deps), args.run_id or new_run_id(), options)
    try:
        results = run.execute()
    except (AlreadyRunningError, WarehouseError) as exc:
        print(f"el run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: recorded and exported as failed by execute
        print(run.summary())
        print("el run: stopped", file=sys.stderr)
        return 130
    print(run.summary())
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    from el.config import ConfigError
    from el.load import LoadError
    from el.lock import AlreadyRunningError
    from el.sources.kafka import StreamError
    from el.stream import Replay, StreamConfig, StreamOptions, run_stream
    from el.warehouse import WarehouseError

    if settings.engine != "duckdb":
        # its offsets, metrics and lock bookkeeping are proven on the DuckDB warehouse only
        print(f"el stream: not supported on a {settings.engine} warehouse yet (DuckDB only)", file=sys.stderr)
        return 2
    try:
        config = StreamConfig.from_env()
        if args.max_rows is not None:
            config = replace(config, max_rows=args.max_rows)
        if args.max_seconds is not None:
            config = replace(config, max_seconds=args.max_seconds)
        options = StreamOptions(
            max_batches=args.max_batches,
            until_idle=args.until_idle,
            replay=tuple(Replay.parse(text) for text in args.replay_from or ()),
            run_id=args.run_id,
        )
        report = run_stream(settings, options, config)
    except (ConfigError, LoadError, StreamError, AlreadyRunningError, WarehouseError) as exc:
        print(f"el stream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a stop dlt itself caught mid-load: the batch is read again on restart
        print(f"el stream: {exc}; its batch is loaded again on restart", file=sys.stderr)
        return 130
    print(
        f"el stream: run {report.run_id}: {report.batches} batches, {report.messages} messages, "
        f"{report.rows} rows, {report.rejects} rejects; stopped: {report.stopped_by or 'done'}"
    )
    return 0


def cmd_lint(args: argparse.Namespace, settings: Settings) -> int:
    from el.lint import lint

    return lint(settings, resolve_mode(settings, try_deps=False), fix=args.fix, paths=args.paths)


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` above zero (0 or less would read nothing, or never stop)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole' if kind is int else 'a'} number") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be above zero")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="el", description="shop ELT: extract-load with dlt, transform with dbt")
    parser.add_argument(
        "--log-format", choices=("text", "json"), help="json: a JSON object per line, with the run id (SHOP_LOG_FORMAT)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    mode = sub.add_parser("mode", help="say whether dbt runs in full or core mode, and why")
    mode.add_argument("--deps", action="store_true", help="try `dbt deps` first when packages are missing")
    mode.set_defaults(func=cmd_mode)

    dbt = sub.add_parser("dbt", help="run any dbt command in the detected mode, e.g. `el dbt build`")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)

    load = sub.add_parser("load", help="extract-load sources into the warehouse (all by default)")
    load.add_argument("sources", nargs="*", help="shop_db, events_api, marketing_files")
    load.add_argument("--run-id", help="use this run id instead of a new one")
    load.set_defaults(func=cmd_load)

    run = sub.add_parser("run", help="load, dbt build, source freshness and the Elementary report, one run id")
    run.add_argument("--source", dest="sources", action="append", help="load only this source (repeatable)")
    run.add_argument("--from", dest="date_from", type=dt.date.fromisoformat, help="backfill marts from this date")
    run.add_argument("--to", dest="date_to", type=dt.date.fromisoformat, help="... up to this date (inclusive)")
    run.add_argument("--full-refresh", action="store_true", help="rebuild every incremental model from raw")
    run.add_argument("--deps", action="store_true", help="try `dbt deps` first when packages are missing")
    run.add_argument("--run-id", help="use this run id instead of a new one")
    run.set_defaults(func=cmd_run)

    stream = sub.add_parser("stream", help="micro-batches from Kafka topics into raw_stream (exactly-once)")
    stream.add_argument(
        "--max-rows", type=positive(int), help="messages per topic per batch (SHOP_STREAM_MAX_ROWS, 5000)"
    )
    stream.add_argument("--max-seconds", type=positive(float), help="seconds per batch (SHOP_STREAM_MAX_SECONDS, 10)")
    stream.add_argument(
        "--max-batches", type=positive(int), help="stop after this many batches (default: until stopped)"
    )
    stream.add_argument("--until-idle", action="store_true", help="stop once every partition is caught up")
    stream.add_argument(
        "--replay-from",
        action="append",
        metavar="TOPIC:PARTITION:OFFSET|TOPIC@TIMESTAMP",
        help="read again from this offset (or timestamp); dbt dedup keeps the marts exact (repeatable)",
    )
    stream.add_argument("--run-id", help="use this run id instead of a new one")
    stream.set_defaults(func=cmd_stream)

    lint = sub.add_parser("lint", help="sqlfluff (dbt templater) over every model, snapshot and singular test")
    lint.add_argument("--fix", action="store_true", help="apply sqlfluff's fixes")
    lint.add_argument("paths", nargs="*", help="files or folders (default: models, tests, snapshots)")
    lint.set_defaults(func=cmd_lint)
    return parser


def json_logs(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this very command again as a child whose every output line becomes JSON with the run id."""
    from el.jsonlog import run_as_json
    from el.load import new_run_id

    run_id = getattr(args, "run_id", None) or os.environ.get("SHOP_RUN_ID") or new_run_id()
    if args.command in ("run", "stream", "load") and not args.run_id:
        argv += ["--run-id", run_id]
    return run_as_json(argv, run_id, args.command)


def main(argv: list[str] | None = None) -> int:
    from el.warehouse import WarehouseError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    json_wanted = args.log_format == "json" or (args.log_format is None and os.environ.get("SHOP_LOG_FORMAT") == "json")
    if json_wanted and not os.environ.get("SHOP_LOG_CHILD"):  # the child of json_logs prints plain lines
        return json_logs(args, argv)
    try:
        settings = Settings.from_env()
    except WarehouseError as exc:  # DBT_TARGET names no output of profiles.yml, or an engine el/ cannot load
        print(f"el: {exc}", file=sys.stderr)
        return 2
    if args.func in (cmd_run, cmd_load, cmd_dbt):
        stop_on_sigterm()
        try:
            return int(args.func(args, settings))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: `el dbt`'s dbt was interrupted and waited for
            # (DbtRunner.run); what `el load` had not committed is extracted again next time; `el run`
            # prints its summary first (cmd_run), unless stopped before it began (e.g. in `dbt deps`)
            print(f"el {args.command}: stopped", file=sys.stderr)
            return 130
    return int(args.func(args, settings))


def stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's stop, `timeout`, systemd) unwinds like Ctrl-C: dbt children are stopped and
    waited for, the run is recorded and exported, and the warehouse lock goes last. Without this the
    process died at once, releasing the lock while its dbt child went on writing. (`el stream` handles
    SIGTERM itself: it finishes its batch.)"""

    def interrupt(signum: int, _frame: object) -> None:
        # once: a second SIGTERM must not break the unwinding (recording the run, exporting its metrics);
        # os.write: a print here could re-enter a stderr write the signal interrupted
        signal.signal(signal.SIGTERM, lambda *_: os.write(2, b"el: already stopping\n"))
        raise KeyboardInterrupt(STOPPED_BY_SIGTERM)

    signal.signal(signal.SIGTERM, interrupt)
    # Ctrl-C's interrupt too, even when the launcher ignores it (a background job of a script, some CI
    # runners): ignored, it is inherited through exec, and the dbt children would not hear the interrupt
    # el sends them to stop (they would run on to the end, or be killed after the grace period)
    signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
