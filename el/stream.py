"""`el stream`: micro-batches from Kafka topics into raw_stream, exactly-once, under the warehouse lock.

Each micro-batch reads up to `max_rows` messages (or for `max_seconds`) per topic from the offsets in
the dlt state, then loads rows, rejects and the new offsets in one load package. The warehouse lock of
`el run`/`el load` is taken per batch: `el stream` is refused when another writer holds it at start,
and between batches it waits for a running `el run` (whose dbt build reads what was streamed).
SIGINT/SIGTERM stop it after the current batch is loaded.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from el import observe
from el.config import ConfigError, count_env, float_env
from el.contracts import as_timestamp
from el.load import (
    Loader,
    LoadError,
    _explain,
    check_warehouse,
    load_pending,
    new_run_id,
    set_aside_failed_packages,
)
from el.lock import AlreadyRunningError, exclusive
from el.metrics import store
from el.secrets import secret
from el.settings import Settings
from el.sources.kafka import (
    SCHEMA_DIR,
    Offsets,
    batch_source,
    load_validator,
    offsets_at,
    read_batch,
    stored_offsets,
    topic_table,
)
from el.warehouse import WarehouseError

PIPELINE = "stream"
IDLE_WAIT_SECONDS = 5.0
# client settings read from the environment (or `.dlt/secrets.toml`, section [sources.kafka])
CLIENT_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
}


def _secret(name: str) -> str | None:
    """SHOP_KAFKA_<NAME> from the environment, else `sources.kafka.<name>` in `.dlt/secrets.toml`."""
    value = os.environ.get(f"SHOP_KAFKA_{name.upper()}")
    if value:
        return value
    return secret(f"sources.kafka.{name}", ConfigError) or None


@dataclass(frozen=True)
class StreamConfig:
    client: dict[str, str]  # librdkafka settings: bootstrap servers, SASL/TLS
    topics: tuple[str, ...]
    max_rows: int = 5000
    max_seconds: float = 10.0
    schema_dir: Path = SCHEMA_DIR

    @classmethod
    def from_env(cls) -> StreamConfig:
        client = {key: value for key, name in CLIENT_SETTINGS.items() if (value := _secret(name))}
        if "bootstrap.servers" not in client:
            raise ConfigError(
                "SHOP_KAFKA_BOOTSTRAP_SERVERS is not set: set it to the broker list, e.g. "
                "SHOP_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 (or sources.kafka.bootstrap_servers in .dlt/secrets.toml)"
            )
        topics = tuple(t.strip() for t in os.environ.get("SHOP_STREAM_TOPICS", "order_status").split(",") if t.strip())
        if not topics:
            raise ConfigError("SHOP_STREAM_TOPICS names no topic")
        return cls(
            client=client,
            topics=topics,
            max_rows=count_env("SHOP_STREAM_MAX_ROWS", 5000),
            max_seconds=float_env("SHOP_STREAM_MAX_SECONDS", 10.0, allow_zero=False),
            schema_dir=Path(os.environ.get("SHOP_STREAM_SCHEMA_DIR") or SCHEMA_DIR),
        )


@dataclass(frozen=True)
class Replay:
    """`--replay-from TOPIC:PARTITION:OFFSET` (one partition) or `TOPIC@TIMESTAMP` (every partition)."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    since: dt.datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Replay:
        # `@` first: a timestamp has colons too (order_status@2026-01-05T10:00:00), a topic never has `@`
        exact = None if "@" in text else re.fullmatch(r"(.+):(\d+):(\d+)", text)
        if exact:
            return cls(exact.group(1), int(exact.group(2)), int(exact.group(3)))
        if "@" in text:
            topic, _, when = text.rpartition("@")
            since = as_timestamp(when)
            if topic and since is not None:
                return cls(topic, since=since if since.tzinfo else since.replace(tzinfo=dt.UTC))
        raise ConfigError(
            f"--replay-from {text!r}: expected TOPIC:PARTITION:OFFSET (e.g. order_status:0:120) "
            "or TOPIC@TIMESTAMP (e.g. order_status@2026-01-05T10:00:00Z)"
        )

    def apply(self, client: dict[str, str], start: Offsets) -> Offsets:
        """`start` moved back to the replayed position; never forward (that would skip messages)."""
        if self.since is not None:
            wanted = offsets_at(client, self.topic, self.since)
        else:
            wanted = {str(self.partition): int(self.offset or 0)}
        moved = dict(start)
        for partition, offset in wanted.items():
            current = start.get(partition, 0)
            if offset > current:
                raise ConfigError(
                    f"--replay-from {self.topic}[{partition}] offset {offset} is after the next unread offset "
                    f"{current}: replaying forward would skip messages"
                )
            moved[partition] = offset
        return moved


@dataclass(frozen=True)
class StreamOptions:
    max_batches: int | None = None  # None: until stopped
    until_idle: bool = False  # stop after the first batch that catches up with every partition
    replay: tuple[Replay, ...] = ()
    run_id: str | None = None


@dataclass
class StreamReport:
    run_id: str
    batches: int = 0
    messages: int = 0
    rows: int = 0
    rejects: int = 0
    stopped_by: str = ""
    offsets: dict[str, Offsets] = field(default_factory=dict)


DLT_INTERCEPT_SIGNALS = "RUNTIME__INTERCEPT_SIGNALS"  # dlt's `runtime.intercept_signals`


class Stopper:
    """SIGINT/SIGTERM ask for a stop; the current batch still finishes (loads what it read)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def __call__(self) -> bool:
        return self.event.is_set()

    def handle(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        print(f"el stream: {self.signal_name}: stopping after the current batch", flush=True)
        self.event.set()

    @contextmanager
    def installed(self) -> Iterator[Stopper]:
        previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        # dlt would swap in its own handlers while it normalizes and loads, and abort the batch on a
        # signal: this handler stays in charge, so the batch in flight is loaded, then the stream stops
        intercept = os.environ.get(DLT_INTERCEPT_SIGNALS)
        os.environ[DLT_INTERCEPT_SIGNALS] = "false"
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if intercept is None:
                os.environ.pop(DLT_INTERCEPT_SIGNALS, None)
            else:
                os.environ[DLT_INTERCEPT_SIGNALS] = intercept


class WarehouseBusyError(AlreadyRunningError):
    """The batch could not take the warehouse lock (another writer holds it), as opposed to a refusal
    raised by the batch itself (e.g. its pipeline folder held by a streamer of another warehouse)."""


@contextmanager
def batch_lock(settings: Settings, what: str, first: bool, stop: Stopper) -> Iterator[None]:
    """The warehouse lock for one batch: refused at start, waited for between batches."""
    announced = False
    with ExitStack() as held:
        while True:
            try:  # only taking the lock: an AlreadyRunningError of the batch itself is not a busy warehouse
                held.enter_context(exclusive(settings.warehouse_db, what))
                break
            except AlreadyRunningError as exc:
                if first or stop():
                    raise WarehouseBusyError(str(exc)) from exc
                if not announced:
                    print(f"el stream: waiting: {exc}", flush=True)
                    announced = True
                time.sleep(1.0)
        yield


class Streamer:
    def __init__(self, settings: Settings, config: StreamConfig, options: StreamOptions, stop: Stopper) -> None:
        self.settings = settings
        self.config = config
        self.options = options
        self.stop = stop
        self.loader = Loader(settings, options.run_id or new_run_id())
        self.validators = {topic: load_validator(topic, config.schema_dir) for topic in config.topics}
        self.report = StreamReport(self.loader.run_id)
        self.replays: dict[str, list[Replay]] = {}
        for replay in options.replay:
            self.replays.setdefault(replay.topic, []).append(replay)
        unknown = sorted(set(self.replays) - set(config.topics))
        if unknown:
            raise ConfigError(f"--replay-from names topic(s) {', '.join(unknown)} not in SHOP_STREAM_TOPICS")

    @contextmanager
    def _locked_pipeline(self) -> Iterator[dlt.Pipeline]:
        """The stream pipeline, its folder locked; held by another process: a LoadError (not the warehouse
        lock's AlreadyRunningError, which batch_lock waits out between batches)."""
        try:
            with self.loader.locked_pipeline(PIPELINE, f"el stream {self.loader.run_id}") as pipeline:
                yield pipeline
        except AlreadyRunningError as exc:
            raise LoadError(f"the stream pipeline's folder: {exc}") from exc

    def batch(self, number: int) -> bool:
        """One micro-batch of every topic; True when every topic was caught up."""
        check_warehouse(self.settings.warehouse_db)
        # the pipeline folder's lock, released before loader.run below takes it again
        with self._locked_pipeline() as pipeline:
            set_aside_failed_packages(pipeline, "left by an earlier run that failed before loading")
            # a run killed while loading left its package (rows and offsets): load it first - dlt's run()
            # would load it and ignore the new batch
            try:
                pending = load_pending(pipeline, "el stream")
            except PipelineStepFailed as exc:
                raise LoadError(f"loading the pending stream package(s) failed: {_explain(exc)}") from exc
            if not pending and number == 1:
                pipeline.sync_destination()  # a lost local state is restored from the warehouse
        caught_up = True
        for topic in self.config.topics:
            clock = time.perf_counter()
            start = stored_offsets(pipeline.state, topic)
            replays = self.replays.pop(topic, [])
            for replay in replays:
                start = replay.apply(self.config.client, start)
            if replays:
                print(f"el stream: replaying {topic} from {_offsets_text(start)}", flush=True)
            batch = read_batch(
                self.config.client, topic, start, self.config.max_rows, self.config.max_seconds, self.stop
            )
            caught_up = caught_up and batch.caught_up
            moved = batch.next_offsets != {p: start.get(p, 0) for p in batch.next_offsets}
            if batch.messages or moved:
                extracted_at = dt.datetime.now(dt.UTC)
                metric = self.loader.run(
                    PIPELINE, topic_table(topic), batch_source(batch, self.validators[topic], extracted_at)
                )
                self.report.rows += metric.rows_loaded
                self.report.rejects += metric.rejects
            self.report.messages += len(batch.messages)
            self.report.offsets[topic] = batch.next_offsets
            print(
                f"el stream: batch {number}: {topic}: {len(batch.messages)} messages, next offsets "
                f"{_offsets_text(batch.next_offsets)}{', caught up' if batch.caught_up else ''} "
                f"in {time.perf_counter() - clock:.1f}s",
                flush=True,
            )
        return caught_up

    def run(self) -> StreamReport:
        number = 0
        while True:
            number += 1
            stored = len(self.loader.metrics)
            try:
                with batch_lock(self.settings, f"el stream {self.loader.run_id}", number == 1, self.stop):
                    try:
                        caught_up = self.batch(number)
                    finally:
                        try:
                            store(self.settings.warehouse_db, self.loader.metrics[stored:])
                        except WarehouseError as exc:  # never hide the batch's own error behind this one
                            print(f"el stream: load metrics not stored: {str(exc).splitlines()[0]}", flush=True)
            except WarehouseBusyError:  # (a refusal raised by the batch itself ends the stream with it)
                if number == 1:
                    raise
                self.report.stopped_by = self.stop.signal_name
                return self.report
            self.report.batches = number
            observe.stream_progress(self.settings, self.report, self.loader.metrics)  # metrics (never raises)
            if self.stop():
                self.report.stopped_by = self.stop.signal_name
                return self.report
            if self.options.max_batches is not None and number >= self.options.max_batches:
                self.report.stopped_by = "max batches"
                return self.report
            if self.options.until_idle and caught_up:
                self.report.stopped_by = "caught up"
                return self.report
            if caught_up:  # nothing more to read now: wait a little before the next batch
                self.stop.event.wait(min(self.config.max_seconds, IDLE_WAIT_SECONDS))


def _offsets_text(offsets: Offsets) -> str:
    return " ".join(f"{p}:{o}" for p, o in sorted(offsets.items(), key=lambda item: int(item[0]))) or "-"


def stream_guard(settings: Settings) -> Path:
    """A second lock held for the whole life of `el stream` (the warehouse lock is released between
    batches): two streamers of one warehouse would read the same offsets and share dlt's local state."""
    return settings.warehouse.with_name(settings.warehouse.name + ".stream")


def run_stream(settings: Settings, options: StreamOptions, config: StreamConfig | None = None) -> StreamReport:
    stop = Stopper()
    config = config or StreamConfig.from_env()
    with stop.installed(), exclusive(stream_guard(settings), f"el stream {options.run_id or ''}".strip()):
        streamer = Streamer(settings, config, options, stop)
        try:
            return streamer.run()
        except Exception:
            observe.stream_progress(settings, streamer.report, streamer.loader.metrics, failed=True)
            raise
