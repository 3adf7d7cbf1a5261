"""Sync latency and throughput: ExecuteTaskSync of a trivial echo, ours next to flytekit's connector server.

Ours: the gRPC adapter (`serverless-agents adapter`, its own process) -> the local stack's HTTP API
(`serverless-agents up`, another process: API Gateway on localhost -> moto's Lambda invoke -> the sync
handler, in-process) -> `EchoAgent.do`. Theirs: `pyflyte serve connector --modules bench.flytekit_echo`,
flytekit's own connector server hosting `EchoConnector`, the same work in one process.

The same load generator drives both, from this process: flyteidl's `SyncAgentServiceStub` over one channel
(as flytepropeller holds one per agent), `concurrency` threads each sending the next request as soon as
its previous one answered, until `count` requests or the time cap. A few warm-up calls first; the very
first call of each server is reported apart (for ours it imports the sync Lambda's handler).

On AWS our path crosses a network to API Gateway and a Lambda instead of loopback and moto, so the
absolute figures are the emulator's, not Lambda's; what carries over is the adapter's overhead and how
the two designs scale on the same cores.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from bench._common import (
    FLYTEKIT_PYTHONPATH_ENV,
    BenchError,
    Child,
    Table,
    adapter,
    bench_main,
    emit,
    flytekit_connector_server,
    group,
    latency_ratios,
    local_stack,
    median,
    memory_kib,
    mib,
    percentile,
)

#: (concurrency, requests) per level; a level also stops at the time cap.
LEVELS: tuple[tuple[int, int], ...] = ((1, 200), (8, 400), (32, 800))
QUICK_LEVELS: tuple[tuple[int, int], ...] = ((1, 20), (8, 40), (32, 64))
TIME_CAP_SECONDS = 60.0
WARMUP_CALLS = 20
#: Generous: a slow answer should be measured, not turned into an error (propeller's is configurable).
CALL_DEADLINE_SECONDS = 30.0


@dataclass
class LoadResult:
    concurrency: int
    requested: int
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The first message seen per error code, to say what went wrong.
    error_samples: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    capped: bool = False

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.wall_seconds if self.wall_seconds else 0.0


def echo_request(task_type: str) -> list[agent_pb2.ExecuteTaskSyncRequest]:
    """The two messages propeller streams for a sync task: the header, then the inputs."""
    from serverless_agents.testing import task_request

    request = task_request(task_type, {"text": "ping"}, {"text": str}, execution="bench-sync")
    header = agent_pb2.CreateRequestHeader(
        template=request.template,
        output_prefix=request.output_prefix,
        task_execution_metadata=request.task_execution_metadata,
    )
    return [
        agent_pb2.ExecuteTaskSyncRequest(header=header),
        agent_pb2.ExecuteTaskSyncRequest(inputs=request.inputs),
    ]


def call(
    stub: agent_pb2_grpc.SyncAgentServiceStub, messages: Sequence[agent_pb2.ExecuteTaskSyncRequest]
) -> None:
    responses = list(stub.ExecuteTaskSync(iter(messages), timeout=CALL_DEADLINE_SECONDS))
    phase = responses[0].header.resource.phase if responses else 0
    if phase != 3:  # SUCCEEDED
        raise RuntimeError(
            f"phase {phase}: {responses[0].header.resource.message if responses else 'no answer'}"
        )


def run_load(
    stub: agent_pb2_grpc.SyncAgentServiceStub,
    messages: Sequence[agent_pb2.ExecuteTaskSyncRequest],
    concurrency: int,
    count: int,
    time_cap: float,
) -> LoadResult:
    result = LoadResult(concurrency, count)
    issued = 0
    lock = threading.Lock()
    deadline = time.monotonic() + time_cap

    def worker() -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= count:
                    return
                if time.monotonic() > deadline:
                    result.capped = True
                    return
                issued += 1
            start = time.perf_counter()
            try:
                call(stub, messages)
            except grpc.RpcError as e:
                with lock:
                    result.errors[e.code().name] += 1
                    result.error_samples.setdefault(e.code().name, str(e.details()))
                continue
            except Exception as e:
                with lock:
                    result.errors[type(e).__name__] += 1
                    result.error_samples.setdefault(type(e).__name__, str(e))
                continue
            elapsed = time.perf_counter() - start
            with lock:
                result.latencies.append(elapsed)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_seconds = time.perf_counter() - started
    return result


@dataclass
class ServerRun:
    name: str
    first_call_ms: float
    levels: list[LoadResult]
    #: The always-on process's memory after the load: (VmRSS, VmHWM) in KiB.
    memory_kib: tuple[int, int] = (0, 0)


def measure(name: str, address: str, task_type: str, levels: Sequence[tuple[int, int]]) -> ServerRun:
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = agent_pb2_grpc.SyncAgentServiceStub(channel)
        messages = echo_request(task_type)
        start = time.perf_counter()
        call(stub, messages)
        first = (time.perf_counter() - start) * 1000
        for _ in range(WARMUP_CALLS):
            call(stub, messages)
        runs = []
        for concurrency, count in levels:
            emit(f"  {name}: concurrency {concurrency}, up to {count} requests ...")
            runs.append(run_load(stub, messages, concurrency, count, TIME_CAP_SECONDS))
        return ServerRun(name, first, runs)
    finally:
        channel.close()


def flytekit_server() -> Child:
    return flytekit_connector_server("bench.flytekit_echo", r"Bench Echo Connector")


def run(quick: bool = False) -> list[Table]:
    levels = QUICK_LEVELS if quick else LEVELS
    runs: list[ServerRun] = []
    flytekit_problem = ""
    with local_stack() as stack:
        stack.start()
        with adapter(group(stack.match, "api")) as ours:
            ours.start()
            address = ours.address
            emit(f"  ours: adapter {address} -> local stack {group(stack.match, 'api')}")
            runs.append(
                measure(
                    "serverless-agents (adapter -> HTTP API -> sync Lambda)", address, "example_echo", levels
                )
            )
            runs[-1].memory_kib = memory_kib(ours.pid)
    theirs = flytekit_server()
    try:
        theirs.start(timeout=120)
        emit(f"  flytekit: pyflyte serve connector on {theirs.address}")
        runs.append(
            measure(
                "flytekit connector server (pyflyte serve connector)", theirs.address, "bench_echo", levels
            )
        )
        runs[-1].memory_kib = memory_kib(theirs.pid)
    except BenchError as e:
        flytekit_problem = _why_flytekit_failed(str(e))
    finally:
        theirs.stop()
    return tables(runs, flytekit_problem)


def _why_flytekit_failed(message: str) -> str:
    if "httpx" in message or "connector dependencies are not installed" in message:
        return (
            "flytekit's connector server could not start: `pyflyte serve connector` imports "
            "flytekit.extras.webhook, which needs httpx (flytekit's `connector` extra), not installed in "
            f"this venv. Install `flytekit[connector]`, or point {FLYTEKIT_PYTHONPATH_ENV} at a directory "
            "holding httpx and httpcore. Only ours is shown."
        )
    return f"flytekit's connector server could not start: {message[:400]}. Only ours is shown."


def tables(runs: list[ServerRun], flytekit_problem: str = "") -> list[Table]:
    table = Table(
        "Sync: ExecuteTaskSync of a trivial echo, same gRPC client for both",
        ["server", "concurrency", "ok", "errors", "p50 ms", "p99 ms", "req/s", "wall s"],
    )
    for server in runs:
        for level in server.levels:
            errors = sum(level.errors.values())
            table.add(
                server.name,
                level.concurrency,
                len(level.latencies),
                f"{errors} ({', '.join(f'{k} {v}' for k, v in level.errors.items())})" if errors else 0,
                median(level.latencies) * 1000,
                percentile(level.latencies, 99) * 1000,
                level.requests_per_second,
                level.wall_seconds,
            )
    for server in runs:
        for level in server.levels:
            for code, message in level.error_samples.items():
                table.notes.append(f"{server.name}, concurrency {level.concurrency}: {code}: {message[:300]}")
    for server in runs:
        table.notes.append(f"first call after start, {server.name}: {server.first_call_ms:.0f} ms")
    for server, process in zip(runs, ("the adapter's", "pyflyte's"), strict=False):
        rss, peak = server.memory_kib
        table.notes.append(
            f"always-on process after the load, {process}: RSS {mib(rss):.0f} MiB (peak {mib(peak):.0f} MiB)"
        )
    capped = [f"{s.name} at concurrency {lv.concurrency}" for s in runs for lv in s.levels if lv.capped]
    if capped:
        table.notes.append(
            f"stopped at the {TIME_CAP_SECONDS:.0f} s cap before all requests: {'; '.join(capped)}"
        )
    if flytekit_problem:
        table.notes.append(flytekit_problem)
    out = [table]
    if len(runs) == 2:
        ours, theirs = runs
        ratio = Table(
            "Sync: ours relative to flytekit's connector server",
            [
                "concurrency",
                "p50 latency, ours / flytekit",
                "p99 latency, ours / flytekit",
                "throughput, ours / flytekit",
            ],
        )
        for mine, other in zip(ours.levels, theirs.levels, strict=True):
            ratio.add(
                mine.concurrency,
                *latency_ratios(mine.latencies, other.latencies),
                f"{mine.requests_per_second / other.requests_per_second:.2f}x",
            )
        out.append(ratio)
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, "fewer requests: a smoke run", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
