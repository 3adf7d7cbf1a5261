"""The docs' pages run as they say: their code blocks, scripts run beside the page's files, and
`serverless-agents up` in a process of its own, on free ports, its lines read as it prints them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

STARTUP_LINES = 200  # `up` prints a handful before it serves; more means it never came up
FREE_PORTS = ["--port", "0", "--grpc-port", "0", "--aws-port", "0"]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def run_there(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python *args` in `folder`, with it on the import path, as a page runs its scripts."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": "."},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass
class UpOutput:
    """What `up` printed: `seen` so far (all of it once `up` stopped), `lines` still to read."""

    lines: Queue[str | None] = field(default_factory=Queue)
    seen: list[str] = field(default_factory=list)

    def read_until(self, pattern: str) -> re.Match[str]:
        return read_until(self.lines, pattern, self.seen)


def read_until(lines: Queue[str | None], pattern: str, seen: list[str]) -> re.Match[str]:
    for _ in range(STARTUP_LINES):
        try:
            line = lines.get(timeout=120)
        except Empty:
            break
        if line is None:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"`up` never printed {pattern!r}:\n{''.join(seen)}")


@contextmanager
def running_up(folder: Path, flags: list[str], env: dict[str, str] | None = None) -> Iterator[UpOutput]:
    """`serverless-agents <flags>` on free ports in `folder`; stopped with Ctrl-C (SIGINT) on leaving,
    its remaining lines read into `seen`."""
    up = subprocess.Popen(
        [str(Path(sys.executable).parent / "serverless-agents"), *flags, *FREE_PORTS],
        cwd=folder,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = UpOutput()

    def pump() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            output.lines.put(line)
        output.lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield output
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    while (line := output.lines.get(timeout=30)) is not None:
        output.seen.append(line)
