"""A Kafka topic as a dlt source, exactly-once into raw.

Partitions are read with `assign()` from the offsets kept in the dlt source state (never from broker
consumer-group commits). The state change that moves an offset past a message is written in the same
load package as the message's row (or reject), so a crash before the package is loaded replays the
messages and a crash after it never reads them again.

Every message is validated against the JSON schema of its topic; a message that is not JSON or breaks
the schema becomes a reject (reason and raw payload) in the same package - never dropped, never fatal.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from dlt.extract.source import DltSource
from jsonschema import Draft202012Validator, FormatChecker

from el.contracts import REJECTS_TABLE, as_timestamp
from el.sources.guard import REJECT_COLUMNS

SOURCE_NAME = "stream"
METADATA_TIMEOUT = 10.0  # seconds to wait for the brokers' answer about a topic
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
# raw lineage columns of every message; prefixed so that no payload field can collide with them
MESSAGE_COLUMNS: dict[str, Any] = {
    "kafka_topic": {"data_type": "text", "nullable": False},
    "kafka_partition": {"data_type": "bigint", "nullable": False},
    "kafka_offset": {"data_type": "bigint", "nullable": False},
    "kafka_key": {"data_type": "text", "nullable": True},
    "kafka_timestamp": {"data_type": "timestamp", "nullable": True},
    "_extracted_at": {"data_type": "timestamp", "nullable": False},
    "_source": {"data_type": "text", "nullable": False},
}
Offsets = dict[str, int]  # "partition" -> next offset to read (JSON state keys are strings)

SCHEMA_VIOLATION = "schema_violation"  # the reason code of a message breaking its topic's schema


class StreamError(RuntimeError):
    """The broker or a topic cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None
    value: bytes | None


@dataclass
class Batch:
    """Messages read from one topic in one micro-batch, and where each partition continues."""

    topic: str
    messages: list[Message] = field(default_factory=list)
    next_offsets: Offsets = field(default_factory=dict)
    caught_up: bool = False  # every partition reached its end during the batch


def topic_table(topic: str) -> str:
    """The raw table of a topic: its name with every character that is not a letter, digit or `_` as `_`."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in topic).lower()


def _format_checker() -> FormatChecker:
    """`"format": "date-time"` is enforced (jsonschema only annotates formats by default): a timestamp
    that matches a pattern but is no date (month 13) is rejected here, not nulled by a cast in dbt."""
    checker = FormatChecker(formats=())

    @checker.checks("date-time")
    def date_time(value: object) -> bool:
        return not isinstance(value, str) or as_timestamp(value) is not None

    return checker


def load_validator(topic: str, schema_dir: Path = SCHEMA_DIR) -> Draft202012Validator:
    path = schema_dir / f"{topic}.json"
    if not path.is_file():
        raise StreamError(f"no JSON schema for topic {topic!r}: expected {path} (SHOP_STREAM_SCHEMA_DIR)")
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def stored_offsets(state: Mapping[str, Any], topic: str) -> Offsets:
    """Next offset per partition of `topic` in a pipeline state (empty before the first load)."""
    source_state = state.get("sources", {}).get(SOURCE_NAME, {})
    return dict(source_state.get("offsets", {}).get(topic, {}))


def _describe(consumer: Consumer, topic: str, servers: str) -> Any:
    """The topic's metadata; a clear StreamError when the brokers cannot be reached."""
    try:
        return consumer.list_topics(topic, timeout=METADATA_TIMEOUT).topics.get(topic)
    except KafkaException as exc:
        raise StreamError(
            f"broker unreachable: no metadata for topic {topic!r} from {servers} "
            f"within {METADATA_TIMEOUT:.0f}s ({exc.args[0].str() if exc.args else exc})"
        ) from exc


def read_batch(
    consumer_config: Mapping[str, Any],
    topic: str,
    start: Offsets,
    max_rows: int,
    max_seconds: float,
    stop: Any = None,
) -> Batch:
    """Up to `max_rows` messages of `topic` read for at most `max_seconds`, every partition from its
    offset in `start` (the beginning of the partition when it has none). Stops early when every
    partition is at its end (caught up) or `stop()` becomes true."""
    consumer = Consumer(
        {
            **consumer_config,
            "group.id": "el-stream",  # required by the client; no group is joined (assign) or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        described = _describe(consumer, topic, consumer_config.get("bootstrap.servers", "?"))
        if described is None or described.error is not None:
            why = described.error if described is not None else "not found"
            raise StreamError(f"topic {topic!r} cannot be read: {why}")
        partitions = sorted(described.partitions)
        batch = Batch(topic, next_offsets={str(p): int(start.get(str(p), 0)) for p in partitions})
        consumer.assign([TopicPartition(topic, p, batch.next_offsets[str(p)]) for p in partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + max_seconds
        while len(batch.messages) < max_rows and time.monotonic() < deadline:
            if stop is not None and stop():
                break
            message = consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    if at_end >= set(partitions):
                        batch.caught_up = True
                        break
                    continue
                if error.fatal() or not error.retriable():
                    raise StreamError(f"reading {topic!r} failed: {error.str()}")
                continue
            at_end.discard(message.partition())
            stamp_type, stamp = message.timestamp()
            batch.messages.append(
                Message(topic, message.partition(), message.offset(), message.key(), stamp if stamp_type else None,
                        message.value())
            )  # fmt: skip
            batch.next_offsets[str(message.partition())] = message.offset() + 1
        return batch
    finally:
        consumer.close()


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _stamp(timestamp_ms: int | None) -> dt.datetime | None:
    return None if timestamp_ms is None else dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)


def coordinates(message: Message) -> dict[str, Any]:
    return {
        "kafka_topic": message.topic,
        "kafka_partition": message.partition,
        "kafka_offset": message.offset,
        "kafka_key": _text(message.key),
        "kafka_timestamp": _stamp(message.timestamp_ms),
    }


def classify(message: Message, validator: Draft202012Validator) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """(payload, None) for a message that keeps its topic's schema, else (None, (reason_code, reason))."""
    if message.value is None:
        return None, ("malformed_JSON", "malformed JSON: the message has no value (tombstone)")
    try:
        payload = json.loads(message.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, ("malformed_JSON", f"malformed JSON: {exc}")
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(part) for part in first.absolute_path) or "(message)"
        return None, (SCHEMA_VIOLATION, f"schema violation: {where}: {first.message[:300]}")
    if not isinstance(payload, dict):
        return None, (SCHEMA_VIOLATION, "schema violation: (message): not a JSON object")
    return payload, None


def split_batch(
    batch: Batch, validator: Draft202012Validator, extracted_at: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows (coordinates + payload fields + lineage) and reject records of a batch."""
    rows, rejects = [], []
    origin = f"kafka:{batch.topic}"
    for message in batch.messages:
        payload, problem = classify(message, validator)
        where = coordinates(message)
        if problem is None and payload is not None:
            rows.append({**payload, **where, "_extracted_at": extracted_at, "_source": origin})
            continue
        code, reason = problem or (SCHEMA_VIOLATION, "schema violation")
        record = {**where, "kafka_timestamp": str(where["kafka_timestamp"]), "payload": _text(message.value)}
        rejects.append(
            {
                "source": SOURCE_NAME,
                "source_table": batch.topic,
                "reason_code": code,
                "reason": f"{reason} ({SOURCE_NAME}.{batch.topic} partition={message.partition}, "
                f"offset={message.offset})",
                "record": json.dumps(record, sort_keys=True),
                "_extracted_at": extracted_at,
                "_source": origin,
            }
        )
    return rows, rejects


def batch_source(batch: Batch, validator: Draft202012Validator, extracted_at: dt.datetime) -> DltSource:
    """The rows and rejects of `batch` and the move of its offsets, one dlt source: one load package."""
    rows, rejects = split_batch(batch, validator, extracted_at)
    table = topic_table(batch.topic)

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0)
    def stream() -> Any:
        @dlt.resource(name=table, write_disposition="append", columns=MESSAGE_COLUMNS)
        def messages() -> Iterator[Any]:
            # the offsets move in the same package as the rows: loaded together or not at all
            offsets = dlt.current.source_state().setdefault("offsets", {})
            offsets[batch.topic] = {**offsets.get(batch.topic, {}), **batch.next_offsets}
            yield rows if rows else dlt.mark.materialize_table_schema()

        @dlt.resource(name=f"{table}__rejects", table_name=REJECTS_TABLE, write_disposition="append",
                      columns=REJECT_COLUMNS)  # fmt: skip
        def quarantined() -> Iterator[Any]:
            yield rejects if rejects else dlt.mark.materialize_table_schema()

        return messages, quarantined

    return stream()


def offsets_at(consumer_config: Mapping[str, Any], topic: str, when: dt.datetime) -> Offsets:
    """Per partition of `topic`, the first offset whose message timestamp is at or after `when`, as the
    broker's time index answers it (a partition with no such message: its end)."""
    consumer = Consumer({**consumer_config, "group.id": "el-stream", "enable.auto.commit": False})
    try:
        described = _describe(consumer, topic, consumer_config.get("bootstrap.servers", "?"))
        if described is None or described.error is not None:
            raise StreamError(f"topic {topic!r} cannot be read: {described.error if described else 'not found'}")
        stamp = int(when.timestamp() * 1000)
        wanted = [TopicPartition(topic, p, stamp) for p in sorted(described.partitions)]
        found = consumer.offsets_for_times(wanted, timeout=10)
        offsets: Offsets = {}
        for part in found:
            if part.error is not None:
                raise StreamError(f"offset of {when.isoformat()} in {topic}[{part.partition}]: {part.error}")
            if part.offset < 0:  # no message at or after `when`: the end of the partition
                part.offset = consumer.get_watermark_offsets(TopicPartition(topic, part.partition), timeout=10)[1]
            offsets[str(part.partition)] = part.offset
        return offsets
    finally:
        consumer.close()
