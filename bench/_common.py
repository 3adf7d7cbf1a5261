"""What the four benchmarks share: the machine's description, tables, percentiles, and child processes.

Servers under test run as child processes started the way a user starts them (`serverless-agents up`,
`serverless-agents adapter`, `pyflyte serve connector`), so their memory can be read from /proc and the
load generator in this process does not share their interpreter lock. A child's output is drained by a
thread (a full pipe would stall it) and its last lines are kept for the error message if it dies.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import math
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
#: The agents the local-stack benchmarks deploy: the example job agent with 1 s waits, and the echo agent.
BENCH_MANIFEST = BENCH_DIR / "agents.toml"
PYTHON = sys.executable
#: Fake credentials for every child: the emulator must never reach a real AWS account.
OFFLINE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


#: A directory holding what flytekit's connector server needs beyond this venv (httpx, httpcore), if any:
#: `pyflyte serve connector` imports flytekit.extras.webhook, which imports httpx.
FLYTEKIT_PYTHONPATH_ENV = "BENCH_FLYTEKIT_PYTHONPATH"


def flytekit_pythonpath() -> str:
    return os.environ.get(FLYTEKIT_PYTHONPATH_ENV, "")


class BenchError(Exception):
    """A benchmark could not run (a server did not start, a time cap was hit): the message says why."""


# ---------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    return [
        f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"{_memory_gib():.0f} GiB RAM, {platform.system()} {platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()})",
        "packages: "
        + ", ".join(
            f"{name} {package_version(name)}"
            for name in ("flyte-serverless-agents", "flytekit", "flyteidl", "grpcio", "moto", "boto3")
        ),
    ]


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return math.nan


# ----------------------------------------------------------------------------------------------- tables


@dataclass
class Table:
    """A markdown table: readable in a terminal, and pasted as is into docs/benchmarks.md."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        cells = [[str(h) for h in self.headers], *([_cell(c) for c in row] for row in self.rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        numeric = [
            all(_looks_numeric(row[i]) for row in cells[1:]) and len(cells) > 1
            for i in range(len(self.headers))
        ]

        def line(row: list[str]) -> str:
            padded = (
                cell.rjust(width) if is_number else cell.ljust(width)
                for cell, width, is_number in zip(row, widths, numeric, strict=True)
            )
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric, strict=True)
        )
        out = [f"### {self.title}", "", line(cells[0]), rule + "|", *(line(row) for row in cells[1:])]
        if self.notes:
            out += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.2f}"
        return f"{value:.2g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


_NUMERIC = re.compile(r"^[-+$]?[\d,]*\.?\d+(e[-+]?\d+)?( ?[%x])?$|^n/a$")


def _looks_numeric(cell: str) -> bool:
    return bool(_NUMERIC.match(cell))


def bench_main(
    doc: str | None, quick_help: str, run: Callable[[bool], Iterable[Any]], argv: list[str] | None
) -> int:
    """A benchmark module's command line: `--quick`, then every table `run` returns, rendered."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    for table in run(args.quick):
        emit(table.render())
    return 0


def emit(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def latency_ratios(ours: Sequence[float], theirs: Sequence[float]) -> tuple[str, str]:
    """p50 and p99 of `ours` over those of `theirs`, as table cells (`2.0x`)."""
    return (
        f"{median(ours) / median(theirs):.1f}x",
        f"{percentile(ours, 99) / percentile(theirs, 99):.1f}x",
    )


# ------------------------------------------------------------------------------------- child processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update(OFFLINE_AWS_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process, in KiB: its resident memory now, and at its peak."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


class Child:
    """A server in a child process; `start()` waits until a line of its output matches `ready`."""

    def __init__(self, name: str, command: Sequence[str], ready: str, env: dict[str, str] | None = None):
        self.name = name
        self.command = list(command)
        self._ready = re.compile(ready)
        self._env = env or child_env()
        self._lines: collections.deque[str] = collections.deque(maxlen=40)
        self._matched = threading.Event()
        self.match: re.Match[str] | None = None
        self.process: subprocess.Popen[str] | None = None
        #: Where the server listens, once known (from its output, or chosen before it started).
        self.address = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120) -> Child:
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._drain, name=f"{self.name}-output", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._matched.wait(0.1):
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{self.name} not ready after {timeout:.0f} s: {self.tail()}")
        return self

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip()
            self._lines.append(line)
            if not self._matched.is_set() and (match := self._ready.search(line)):
                self.match = match
                self._matched.set()

    def tail(self, lines: int = 12) -> str:
        return " | ".join(list(self._lines)[-lines:]) or "(no output)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_CLI = (PYTHON, "-m", "serverless_agents.cli")


def local_stack(manifest: Path = BENCH_MANIFEST) -> Child:
    """`serverless-agents up`: moto, the Lambdas in-process, the HTTP API (and its own adapter, unused)."""
    return Child(
        "local stack",
        [*_CLI, "up", "--manifest", str(manifest), "--port", "0", "--grpc-port", "0"],
        r"HTTP API on (?P<api>\S+), gRPC adapter on (?P<grpc>\S+)",
    )


def adapter(api_url: str) -> Child:
    """`serverless-agents adapter` alone, in front of the local stack's HTTP API; `.address` once started."""
    return _AdapterChild(
        "adapter",
        [
            *_CLI,
            "adapter",
            "--api",
            api_url,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            str(free_port()),
        ],
        r"adapter: gRPC on (?P<host>\S+):(?P<port>\d+) ",
        # The key that signs resource_meta, which the adapter refuses to start without; one per run.
        env=child_env(SA_RESOURCE_META_KEYS=secrets.token_hex(32)),
    )


class _AdapterChild(Child):
    def start(self, timeout: float = 120) -> Child:
        super().start(timeout)
        self.address = f"{group(self.match, 'host')}:{group(self.match, 'port')}"
        return self


def flytekit_connector_server(module: str, ready: str) -> Child:
    """`pyflyte serve connector --modules <module>`: flytekit's own connector server, hosting the connectors
    `module` registers at import; started once its output names `ready` (a connector's name)."""
    port = free_port()
    pythonpath = os.pathsep.join(p for p in (flytekit_pythonpath(), os.environ.get("PYTHONPATH", "")) if p)
    env = child_env(PYTHONPATH=pythonpath) if pythonpath else child_env()
    pyflyte = str(Path(PYTHON).parent / "pyflyte")
    command = [pyflyte, "serve", "connector", "--port", str(port), "--prometheus_port", str(free_port())]
    child = Child("pyflyte serve connector", [*command, "--modules", module], ready, env=env)
    child.address = f"127.0.0.1:{port}"
    return child


def group(match: re.Match[str] | None, name: str) -> str:
    assert match is not None
    return match[name]


class MemorySampler:
    """Samples a process's resident memory every `interval` seconds, from a thread, until stopped."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self.hwm_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        try:
            rss, hwm = memory_kib(self.pid)
        except OSError:
            return
        self.samples.append(rss)
        self.hwm_kib = max(self.hwm_kib, hwm)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def mib(kib: float) -> float:
    return kib / 1024


def joined(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"
