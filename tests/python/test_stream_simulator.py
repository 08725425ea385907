"""The order-status stream simulator: deterministic by seed, defects at their configured rates."""

from __future__ import annotations

import json

from shopsim.stream import StreamSimConfig, plan
from tests.python.conftest import within_rate


def test_same_seed_same_messages_other_seed_differs() -> None:
    config = StreamSimConfig(seed=3, orders=150)
    assert plan(config).messages == plan(config).messages
    assert plan(config).messages != plan(StreamSimConfig(seed=4, orders=150)).messages


def test_duplicates_late_and_poison_messages_at_their_configured_rates() -> None:
    config = StreamSimConfig(seed=11, orders=2000, duplicate_rate=0.1, late_rate=0.2, poison=5)
    sim = plan(config)
    changes = len(sim.changes)
    valid = [m for m in sim.messages if not m.poison]
    duplicates = [m for m in valid if m.duplicate]
    late = sim.late()
    assert sum(m.poison for m in sim.messages) == 5
    assert len(valid) == changes + len(duplicates), "every change is published, re-sent ones once more"
    assert {json.loads(m.value)["event_id"] for m in valid} == {c.event_id for c in sim.changes}
    assert within_rate(len(duplicates), changes - len(late), 0.1)
    assert within_rate(len(late), changes // 2, 0.2), "late messages are drawn from the first half"
    # late messages come after every on-time one, in publish time and in order
    assert sim.messages[-len(late) :] == late
    assert min(m.timestamp_ms for m in late) > max(m.timestamp_ms for m in sim.on_time())
    # a duplicate is the same message again (same key, payload and partition)
    originals = {(m.partition, m.key, m.value) for m in valid if not m.duplicate}
    assert all((m.partition, m.key, m.value) in originals for m in duplicates)


def test_partition_follows_the_order_key() -> None:
    config = StreamSimConfig(seed=5, orders=100, partitions=4)
    for message in plan(config).messages:
        if not message.poison:
            assert message.partition == int(message.key) % 4
