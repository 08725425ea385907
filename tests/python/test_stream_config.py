"""`el stream` configuration: broker and credentials from the environment or `.dlt/secrets.toml`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from el.config import ConfigError
from el.lock import AlreadyRunningError, exclusive
from el.settings import Settings
from el.sources.kafka import Message, classify, load_validator
from el.stream import Replay, Stopper, WarehouseBusyError, batch_lock
from tests.python.conftest import PROJECT_ROOT

SHOW = (
    "import json; from el.stream import StreamConfig; c = StreamConfig.from_env(); "
    "print(json.dumps([c.client, c.topics, c.max_rows]))"
)


def _config(cwd: Path, **env: str) -> list:  # cwd: the dlt project folder (DLT_PROJECT_DIR)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_KAFKA_", "SHOP_STREAM_", "SOURCES__"))}
    done = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(PROJECT_ROOT), "DLT_PROJECT_DIR": str(cwd), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_secrets_toml_gives_broker_and_credentials_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        '[sources.kafka]\nbootstrap_servers = "b1:9093,b2:9093"\nsecurity_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "shop"\nsasl_password = "s3cret"\n'
    )
    client, topics, max_rows = _config(tmp_path)
    assert client == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "shop",
        "sasl.password": "s3cret",
    }
    assert (topics, max_rows) == (["order_status"], 5000)
    client, topics, max_rows = _config(
        tmp_path, SHOP_KAFKA_BOOTSTRAP_SERVERS="env:9092", SHOP_STREAM_TOPICS="a, b", SHOP_STREAM_MAX_ROWS="10"
    )
    assert client["bootstrap.servers"] == "env:9092" and client["sasl.password"] == "s3cret"
    assert (topics, max_rows) == (["a", "b"], 10)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("SHOP_STREAM_MAX_ROWS", "0", "must be positive"),
        ("SHOP_STREAM_MAX_SECONDS", "-1", "must be positive"),
        ("SHOP_STREAM_MAX_ROWS", "many", "is not a number"),
    ],
)
def test_a_batch_bound_that_is_not_positive_fails_with_its_name(
    tmp_path: Path, name: str, raw: str, message: str
) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _config(tmp_path, SHOP_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", **{name: raw})
    assert f"{name}={raw!r} {message}" in failed.value.stderr


def test_replay_positions_parse_or_fail_clearly() -> None:
    assert Replay.parse("order_status:2:120") == Replay("order_status", 2, 120)
    assert Replay.parse("shop.orders:0:0") == Replay("shop.orders", 0, 0)
    since = Replay.parse("order_status@2026-01-05T10:00:00Z").since
    assert since is not None and since.isoformat() == "2026-01-05T10:00:00+00:00"
    for bad in ("order_status", "order_status:x:1", "order_status@yesterday"):
        with pytest.raises(ConfigError, match="expected TOPIC:PARTITION:OFFSET"):
            Replay.parse(bad)


def test_the_order_status_schema_rejects_what_staging_could_not_cast() -> None:
    validator = load_validator("order_status")

    def verdict(payload: object) -> str | None:
        value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        found, problem = classify(Message("order_status", 0, 0, None, None, value), validator)
        return problem[0] if problem else ("ok" if found else None)

    good = {"event_id": "1-0-placed", "order_id": 1, "status": "placed", "changed_at": "2026-01-05T10:00:00Z"}
    assert verdict(good) == "ok"
    assert verdict({**good, "changed_at": "2026-13-45T10:00:00Z"}) == "schema_violation"  # no such date
    assert verdict({**good, "order_id": 2**63}) == "schema_violation"  # beyond bigint
    assert verdict({**good, "order_id": "7"}) == "schema_violation"
    assert verdict({**good, "status": "lost"}) == "schema_violation"
    assert verdict([good]) == "schema_violation"
    assert verdict(b"\xff\xfe") == "malformed_JSON"


def test_el_stream_refuses_a_postgres_warehouse_in_one_line(tmp_path: Path) -> None:
    """Streaming is proven on DuckDB only: a PostgreSQL target is refused before anything is read."""
    from tests.python.el_helpers import env_for, settings_for

    settings = settings_for(tmp_path)
    env = {**env_for(settings), "DBT_TARGET": "postgres", "SHOP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "stream", "--max-batches", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "el stream: not supported on a postgres warehouse yet (DuckDB only)"
    assert not settings.warehouse.exists()


def test_replay_from_a_timestamp_without_zone_is_a_timestamp_not_a_partition() -> None:
    replay = Replay.parse("order_status@2026-01-05T10:00:00")
    assert (replay.topic, replay.partition, replay.offset) == ("order_status", None, None)
    assert replay.since is not None and replay.since.isoformat() == "2026-01-05T10:00:00+00:00"
    exact = Replay.parse("order_status:0:120")
    assert (exact.topic, exact.partition, exact.offset, exact.since) == ("order_status", 0, 120, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-rows", "0"], "argument --max-rows: '0' must be above zero"),
        (["--max-rows", "2.5"], "argument --max-rows: '2.5' is not a whole number"),
        (["--max-seconds", "-1"], "argument --max-seconds: '-1' must be above zero"),
        (["--max-batches", "0"], "argument --max-batches: '0' must be above zero"),
    ],
)
def test_stream_limits_that_would_read_nothing_or_never_stop_are_refused(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "el.cli", "stream", *args],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_the_batch_lock_does_not_take_a_batchs_own_refusal_for_a_busy_warehouse(tmp_path: Path) -> None:
    """A refusal raised inside the batch (e.g. its pipeline folder held by a streamer of another warehouse)
    ends the stream with that refusal; it used to be taken for a busy warehouse and broke the generator."""
    settings = Settings.under(PROJECT_ROOT, tmp_path)
    settings.warehouse.parent.mkdir(parents=True)
    with (
        pytest.raises(AlreadyRunningError, match="pipeline folder held") as raised,
        batch_lock(settings, "el stream test", first=False, stop=Stopper()),
    ):
        raise AlreadyRunningError("pipeline folder held")
    assert not isinstance(raised.value, WarehouseBusyError)  # Streamer.run ends the stream with it
    # the lock was released; held by another writer, the batch is refused with the busy-warehouse error
    with (
        exclusive(settings.warehouse_db, "el run r-1"),
        pytest.raises(WarehouseBusyError, match="el run r-1"),
        batch_lock(settings, "x", first=True, stop=Stopper()),
    ):
        pass
