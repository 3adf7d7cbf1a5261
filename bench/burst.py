"""A burst of CreateTask: 200 calls at once, ours next to flytekit's connector server.

Flyte 2's executor reconciles up to 512 task actions at once (flyteorg/flyte executor/pkg/config/config.go,
`MaxConcurrentReconciles`) and each new action's reconcile calls CreateTask with a 10 s deadline
(flyteplugins/go/tasks/plugins/webapi/connector/config.go, `defaultTimeout`); a call that misses it fails the
attempt. This fires `BURST` CreateTask calls at once, each with that deadline, and reports their latency.

Ours: the gRPC adapter (`serverless-agents adapter`, its own process) -> the local stack's HTTP API
(`serverless-agents up`, another process: API Gateway on localhost -> the api Lambda, in-process -> the tasks
table and StartExecution on moto) for the example job agent (bench/agents.toml), whose executions then run
on the same emulator. Theirs: `pyflyte serve connector --modules bench.flytekit_job`, flytekit's own
connector server hosting a trivial `AsyncConnectorBase` whose create returns its metadata at once
(bench/flytekit_job.py).
Both are driven through flyteidl's `AsyncAgentServiceStub` (flytekit's server serves Flyte 1's service; the
adapter serves the same calls for both protocols), over one channel, from this process, after a few warm-up
calls. Each burst's calls start together (a barrier); `ROUNDS` bursts, their latencies pooled.

On AWS our path crosses a network to API Gateway and Lambda, and the executions run elsewhere, not on the
cores the API uses; locally everything shares the emulator's interpreter. So the absolute figures are the
emulator's; what carries over is that the burst is answered within its deadline, and the shape of the curve.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from flyteidl.service import agent_pb2_grpc

from bench._common import (
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
    percentile,
)

if TYPE_CHECKING:
    from flyteidl.admin import agent_pb2

BURST = 200
QUICK_BURST = 50
ROUNDS = 3
QUICK_ROUNDS = 1
#: The executor's deadline on CreateTask (config.go: DefaultConnector.DefaultTimeout).
DEADLINE_SECONDS = 10.0
WARMUP_CALLS = 5
#: Between bursts: the previous burst's tasks finish (one poll, a second apart) before the next starts.
SETTLE_SECONDS = 5.0

_runs = iter(range(1_000_000))


@dataclass
class BurstResult:
    calls: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)


def create_request(task_type: str, run: str, node: str) -> agent_pb2.CreateTaskRequest:
    """A task of its own per call: one Flyte node execution each, as a reconcile burst has."""
    from serverless_agents.testing import task_request

    return task_request(task_type, {"n": 1}, {"n": int, "polls": int}, {"polls": 1}, execution=run, node=node)


def burst(stub: agent_pb2_grpc.AsyncAgentServiceStub, task_type: str, size: int, result: BurstResult) -> None:
    run = f"burst{next(_runs)}"
    requests = [create_request(task_type, run, f"n{i}") for i in range(size)]
    start = threading.Barrier(size + 1)
    lock = threading.Lock()

    def reconcile(request: agent_pb2.CreateTaskRequest) -> None:
        start.wait()
        began = time.perf_counter()
        try:
            stub.CreateTask(request, timeout=DEADLINE_SECONDS)
        except grpc.RpcError as e:
            with lock:
                result.errors[e.code().name] += 1
                result.error_samples.setdefault(e.code().name, str(e.details()))
            return
        elapsed = time.perf_counter() - began
        with lock:
            result.latencies.append(elapsed)

    threads = [threading.Thread(target=reconcile, args=(request,), daemon=True) for request in requests]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.walls.append(time.perf_counter() - began)
    result.calls += size


def measure(name: str, address: str, task_type: str, size: int, rounds: int) -> BurstResult:
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        warmup = f"warm{next(_runs)}"
        for i in range(WARMUP_CALLS):
            stub.CreateTask(create_request(task_type, warmup, f"n{i}"), timeout=30)
        result = BurstResult()
        for number in range(rounds):
            if number:
                time.sleep(SETTLE_SECONDS)
            emit(f"  {name}: burst {number + 1} of {rounds}, {size} CreateTask at once ...")
            burst(stub, task_type, size, result)
        return result
    finally:
        channel.close()


def flytekit_server() -> Child:
    return flytekit_connector_server("bench.flytekit_job", r"Bench Job Connector")


OURS = "serverless-agents (adapter -> HTTP API -> tasks table + StartExecution)"
THEIRS = "flytekit connector server (pyflyte serve connector)"


def run(quick: bool = False) -> list[Table]:
    size, rounds = (QUICK_BURST, QUICK_ROUNDS) if quick else (BURST, ROUNDS)
    results: dict[str, BurstResult] = {}
    with local_stack() as stack:
        stack.start()
        with adapter(group(stack.match, "api")) as ours:
            ours.start()
            emit(f"  ours: adapter {ours.address} -> local stack {group(stack.match, 'api')}")
            results[OURS] = measure(OURS, ours.address, "example_job", size, rounds)
    theirs = flytekit_server()
    try:
        theirs.start(timeout=120)
        emit(f"  flytekit: pyflyte serve connector on {theirs.address}")
        results[THEIRS] = measure(THEIRS, theirs.address, "bench_fk_job", size, rounds)
    except BenchError as e:
        emit(f"  flytekit's connector server could not start: {e}")
    finally:
        theirs.stop()
    return tables(results, size, rounds)


def tables(results: dict[str, BurstResult], size: int, rounds: int) -> list[Table]:
    table = Table(
        f"Burst: {size} concurrent CreateTask, {DEADLINE_SECONDS:.0f} s deadline each, {rounds} burst(s)",
        ["server", "calls", "ok", "errors", "p50 s", "p99 s", "max s", "burst wall s"],
    )
    for name, result in results.items():
        errors = sum(result.errors.values())
        table.add(
            name,
            result.calls,
            len(result.latencies),
            f"{errors} ({', '.join(f'{k} {v}' for k, v in result.errors.items())})" if errors else 0,
            median(result.latencies),
            percentile(result.latencies, 99),
            max(result.latencies, default=float("nan")),
            max(result.walls, default=float("nan")),
        )
        for code, message in result.error_samples.items():
            table.notes.append(f"{name}: {code}: {message[:300]}")
    out = [table]
    if len(results) == 2:
        ours, theirs = results[OURS], results[THEIRS]
        ratio = Table(
            "Burst: ours relative to flytekit's connector server (same run)",
            ["p50 latency, ours / flytekit", "p99 latency, ours / flytekit"],
        )
        ratio.add(*latency_ratios(ours.latencies, theirs.latencies))
        out.append(ratio)
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, "one burst of 50: a smoke run", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
