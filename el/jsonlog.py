"""Structured logs: `el --log-format json ...` (or SHOP_LOG_FORMAT=json) runs the command as a child
process and turns every line it (and every tool it starts: dlt, dbt, edr) writes into one JSON object
with the run id: {"ts", "level", "run_id", "command", "stream", "message"}. stdout lines stay on stdout
(level info), stderr lines on stderr (level error when they say so, else warning)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
from typing import IO, Any

FORMAT_ENV = "SHOP_LOG_FORMAT"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR = re.compile(r"\b(error|failed|traceback)\b", re.IGNORECASE)


def record(line: str, stream: str, run_id: str, command: str) -> dict[str, Any]:
    message = ANSI.sub("", line.rstrip("\r\n"))
    level = "info" if stream == "stdout" else ("error" if ERROR.search(message) else "warning")
    return {
        "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "run_id": run_id,
        "command": command,
        "stream": stream,
        "message": message,
    }


def _pump(source: IO[str], sink: IO[str], stream: str, run_id: str, command: str, lock: threading.Lock) -> None:
    for line in source:
        text = json.dumps(record(line, stream, run_id, command), ensure_ascii=False)
        with lock:
            sink.write(text + "\n")
            sink.flush()


def run_as_json(argv: list[str], run_id: str, command: str) -> int:
    """Run `el <argv>` in a child process (same interpreter) with its output as JSON lines."""
    env = {**os.environ, FORMAT_ENV: "text", "SHOP_LOG_CHILD": "1", "SHOP_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "el.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
    )
    lock = threading.Lock()
    pumps = [
        threading.Thread(target=_pump, args=(child.stdout, sys.stdout, "stdout", run_id, command, lock), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, sys.stderr, "stderr", run_id, command, lock), daemon=True),
    ]
    for pump in pumps:
        pump.start()

    def forward(signum: int, _frame: Any) -> None:  # `el stream` stops cleanly on SIGTERM/SIGINT
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for pump in pumps:
        pump.join()
    return code
