"""Several dbt commands in ONE dbt process (`el run`'s build and source freshness).

A dbt process costs 2.5-3 s before its first node (Python and dbt imports, project parse, adapter
start; for Spark a JVM and a session too). `el run` runs `dbt build` then `dbt source freshness`;
this runs both in one child process through dbt's programmatic runner (dbtRunner): the project is
parsed once and both commands reuse that manifest.

The commands run in a child process (`python -m el.dbt_batch`), not in el's own, so that nothing dbt
opens outlives it: dbt-duckdb's handle on the warehouse file, a Spark session's JVM and its Derby
metastore. The child reports each command's exit status (as the dbt CLI's: 0 ok, 1 failed nodes,
2 dbt error) as one JSON line on a pipe and waits for `next` on its stdin before the next command,
so the parent does between commands exactly what it did between two dbt processes (record the step,
read run_results.json) and the commands' output keeps its order in the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

NEXT = "next"


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    seconds: float  # the command's own time in the child (the first also pays the shared parse)
    error: str = ""  # dbt's exception when it raised one (exit code 2)


def exit_code(success: bool, exception: BaseException | None) -> int:
    """The exit status the dbt CLI gives the same outcome (dbt.utils.ExitCodes)."""
    if success:
        return 0
    return 2 if exception is not None else 1


class DbtBatch:
    """Parent side: start the child with `commands` (dbt arguments, no executable), then ask for each
    command's result in order with `next_result`; `close` when done (also when stopping early)."""

    def __init__(self, commands: list[list[str]], parse: list[str], env: dict[str, str], cwd: str) -> None:
        self.commands = commands
        self.parse = parse
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.results: IO[str] | None = None
        self.received = 0

    def start(self) -> None:
        read, write = os.pipe()
        spec = json.dumps({"parse": self.parse, "commands": self.commands})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "el.dbt_batch", "--results-fd", str(write), spec],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE,
            text=True,
            pass_fds=(write,),
        )
        os.close(write)
        self.results = os.fdopen(read, "r")

    def next_result(self) -> CommandResult:
        """The next command's result; the child runs it only now (the first runs when started)."""
        if self.process is None:
            self.start()
        assert self.process is not None and self.process.stdin is not None and self.results is not None
        if self.received:
            try:
                self.process.stdin.write(NEXT + "\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass  # the child died: reading below finds no result
        self.received += 1
        line = self.results.readline()
        if not line:  # the child ended without a result: it crashed or was killed
            code = self.process.wait()
            return CommandResult(code or 2, 0.0, f"the dbt process ended with {code} before reporting")
        return CommandResult(**json.loads(line))

    def stop(self, grace: float = 30.0, forward: bool = True) -> None:
        """The run is being stopped (Ctrl-C, SIGTERM): interrupt the child as Ctrl-C would (dbt cancels its
        queries), kill it after `grace` seconds, and wait for it, so nothing writes after el lets go of
        the warehouse."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()  # EOF: once dbt returns, the child runs nothing more
        interrupt_and_wait(self.process, grace, forward)

    def close(self) -> int | None:
        if self.process is None:
            return None
        if self.process.stdin is not None:
            self.process.stdin.close()  # EOF: the child runs nothing more
        code = self.process.wait()
        if self.results is not None:  # (None when stopped between starting the child and opening the pipe)
            self.results.close()
        return code


STOPPED_BY_SIGTERM = "stopped by SIGTERM"  # the KeyboardInterrupt el raises for a SIGTERM (el.cli)


def needs_forwarding(stop: BaseException) -> bool:
    """Whether the dbt child must be sent the interrupt: not for a terminal Ctrl-C, which the whole
    foreground process group (dbt included) already got - a second one would break dbt's cancelling."""
    return not isinstance(stop, KeyboardInterrupt) or stop.args == (STOPPED_BY_SIGTERM,)


def interrupt_and_wait(process: subprocess.Popen[Any], grace: float = 30.0, forward: bool = True) -> None:
    """Stop a dbt child as Ctrl-C would (dbt cancels its queries; `forward` False: it got Ctrl-C itself),
    SIGKILL it after `grace` seconds (or at once on a second stop), and wait for it: nothing it started
    writes after this returns."""
    if process.poll() is not None:
        return
    if forward:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except BaseException:  # the grace ran out, or a second Ctrl-C: no more waiting
        process.kill()
        process.wait()
        if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
            raise


def run_commands(parse: list[str], commands: list[list[str]], report: IO[str]) -> None:
    """Child side: parse once, run `commands` one after the other on that manifest, report each, wait
    for `next` between two. When the parse fails, every command parses itself (and fails as the dbt CLI
    would, with dbt's own error)."""
    from dbt.cli.main import dbtRunner

    clock = time.perf_counter()
    parsed = dbtRunner().invoke(parse)
    if isinstance(parsed.exception, KeyboardInterrupt):  # stopped during the parse: run nothing
        return
    manifest = parsed.result if parsed.success else None
    runner = dbtRunner(manifest=manifest)
    for index, command in enumerate(commands):
        if index and sys.stdin.readline().strip() != NEXT:
            return
        outcome = runner.invoke(command)  # dbt turns an interrupt into cancelled queries and this result
        result: dict[str, Any] = {
            "exit_code": exit_code(outcome.success, outcome.exception),
            "seconds": time.perf_counter() - clock,
            "error": str(outcome.exception or ""),
        }
        report.write(json.dumps(result) + "\n")
        report.flush()
        if isinstance(outcome.exception, KeyboardInterrupt):  # stopped: nothing more
            return
        clock = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-fd", type=int, required=True)
    parser.add_argument("spec", help='JSON: {"parse": [dbt args], "commands": [[dbt args], ...]}')
    args = parser.parse_args()
    spec = json.loads(args.spec)
    try:
        with os.fdopen(args.results_fd, "w") as report:
            run_commands(spec["parse"], spec["commands"], report)
    except KeyboardInterrupt:  # stopped outside dbt (importing it, waiting for `next`): quietly
        sys.exit(130)


if __name__ == "__main__":
    main()
