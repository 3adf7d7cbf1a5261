"""Scale: hundreds of concurrent async tasks through the adapter, as flytepropeller would send them.

Three processes: the local stack (`serverless-agents up`: moto, every Lambda in-process, the HTTP API),
the adapter alone (`serverless-agents adapter`, whose memory is the figure: /proc/<pid>/status, sampled
every half second, and its VmHWM peak), and this one, playing propeller with flyteidl's stubs
(`serverless_agents.local.demo.FlyteClient`): CreateTask for every task at once from a pool of threads, then
GetTask for each unfinished task every second until all reach a final phase, or the time cap.

The tasks are the example job agent's, finishing after `POLLS` gets with 1 s waits (bench/agents.toml).
A task is lost if it never reaches a final phase in time, or GetTask stops finding it.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from bench._common import (
    BenchError,
    MemorySampler,
    Table,
    adapter,
    bench_main,
    emit,
    group,
    local_stack,
    memory_kib,
    mib,
)

SIZES = (200, 1000)
QUICK_SIZES = (20, 50)
POLLS = 3
TIME_CAP_SECONDS = 600.0
#: Client threads: propeller's agent plugin runs a bounded pool of workers too.
CLIENT_THREADS = 32
POLL_INTERVAL_SECONDS = 1.0
#: CreateTask answered UNAVAILABLE is tried again, as propeller re-evaluates the node: the task id
#: derives from the attempt, so a repeated create returns the same task and starts no second job.
CREATE_ATTEMPTS = 5
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class ScaleRun:
    size: int
    created: int = 0
    create_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    create_retries: int = 0
    create_seconds: float = 0.0
    final: collections.Counter[str] = field(default_factory=collections.Counter)
    get_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    gets: int = 0
    wall_seconds: float = 0.0
    p50_task_seconds: float = 0.0
    max_task_seconds: float = 0.0
    timed_out: bool = False
    adapter_idle_mib: float = 0.0
    adapter_peak_mib: float = 0.0
    stack_peak_mib: float = 0.0
    error_samples: dict[str, str] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.size - sum(self.final.values())


class Propeller:
    """flytepropeller's side for one run: CreateTask for every task, then GetTask until each is final."""

    def __init__(self, address: str, size: int, run_name: str, result: ScaleRun) -> None:
        from serverless_agents.local.demo import FlyteClient

        self.flyte = FlyteClient(address)
        self.size = size
        self.run_name = run_name
        self.result = result
        self.lock = threading.Lock()
        self.metas: dict[int, bytes] = {}
        self.created_at: dict[int, float] = {}
        self.final_at: dict[int, float] = {}

    def _error(self, operation: str, error: grpc.RpcError) -> None:
        code = error.code().name
        with self.lock:
            counter = self.result.create_errors if operation == "create" else self.result.get_errors
            counter[code] += 1
            self.result.error_samples.setdefault(f"{operation} {code}", str(error.details()))

    def create(self, index: int) -> None:
        from serverless_agents.testing import task_request

        request = task_request(
            "example_job",
            {"n": index},
            {"n": int, "polls": int},
            {"polls": POLLS},
            execution=self.run_name,
            node=f"n{index}",
        )
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                meta = self.flyte.create(request)
            except grpc.RpcError as e:
                self._error("create", e)
                if e.code() not in _TRANSIENT or attempt == CREATE_ATTEMPTS:
                    return
                with self.lock:
                    self.result.create_retries += 1
                time.sleep(0.5 * attempt)
                continue
            with self.lock:
                self.metas[index] = meta
                self.created_at[index] = time.monotonic()
            return

    def get(self, index: int) -> None:
        from serverless_agents.agent import Phase

        try:
            resource = self.flyte.get(self.metas[index], "example_job")
        except grpc.RpcError as e:
            self._error("get", e)
            return
        phase = Phase(resource.phase)
        with self.lock:
            self.result.gets += 1
            if phase.is_terminal and index not in self.final_at:
                self.final_at[index] = time.monotonic()
                self.result.final[phase.name] += 1

    def drive(self, deadline: float) -> None:
        """Create every task from one pool while another polls the ones created, as propeller interleaves."""
        begin = time.monotonic()
        half = max(1, CLIENT_THREADS // 2)
        with ThreadPoolExecutor(half) as creators, ThreadPoolExecutor(half) as pollers:
            creating = [creators.submit(self.create, index) for index in range(self.size)]
            last_report = time.monotonic()
            while True:
                created_all = all(future.done() for future in creating)
                if created_all and not self.result.create_seconds:
                    self.result.created = len(self.metas)
                    self.result.create_seconds = time.monotonic() - begin
                with self.lock:
                    pending = [i for i in self.metas if i not in self.final_at]
                if created_all and not pending:
                    break
                if time.monotonic() > deadline:
                    self.result.timed_out = True
                    for future in creating:
                        future.cancel()
                    break
                sweep = time.monotonic()
                list(pollers.map(self.get, pending))
                if time.monotonic() - last_report > 15:
                    created, final = len(self.metas), len(self.final_at)
                    emit(f"  {self.size} tasks: {created} created, {final} final after {sweep - begin:.0f} s")
                    last_report = time.monotonic()
                time.sleep(max(0.0, POLL_INTERVAL_SECONDS - (time.monotonic() - sweep)))
        self.result.created = len(self.metas)
        self.result.wall_seconds = time.monotonic() - begin
        durations = sorted(self.final_at[i] - self.created_at[i] for i in self.final_at)
        if durations:
            self.result.p50_task_seconds = durations[len(durations) // 2]
            self.result.max_task_seconds = durations[-1]

    def close(self) -> None:
        self.flyte.close()


def run_size(size: int, run_name: str, time_cap: float) -> ScaleRun:
    result = ScaleRun(size)
    with local_stack() as stack:
        stack.start()
        with adapter(group(stack.match, "api")) as ours:
            ours.start()
            result.adapter_idle_mib = mib(memory_kib(ours.pid)[0])
            propeller = Propeller(ours.address, size, run_name, result)
            try:
                with MemorySampler(ours.pid) as adapter_memory, MemorySampler(stack.pid) as stack_memory:
                    propeller.drive(time.monotonic() + time_cap)
                if not stack.alive() or not ours.alive():
                    raise BenchError(f"a server died: stack: {stack.tail()} | adapter: {ours.tail()}")
            finally:
                propeller.close()
            result.adapter_peak_mib = mib(max(adapter_memory.hwm_kib, *adapter_memory.samples, 0))
            result.stack_peak_mib = mib(max(stack_memory.hwm_kib, *stack_memory.samples, 0))
    return result


def run(quick: bool = False) -> list[Table]:
    sizes = QUICK_SIZES if quick else SIZES
    runs = []
    for size in sizes:
        emit(
            f"  scale: {size} concurrent tasks ({POLLS} polls each, 1 s waits), cap {TIME_CAP_SECONDS:.0f} s"
        )
        runs.append(run_size(size, f"scale{size}-{time.time_ns()}", TIME_CAP_SECONDS))
    return [table(runs)]


def table(runs: list[ScaleRun]) -> Table:
    out = Table(
        f"Scale: concurrent async tasks (example job, {POLLS} polls, 1 s waits) through the adapter",
        [
            "tasks",
            "created",
            "final",
            "lost",
            "create retries",
            "all created s",
            "wall s",
            "task p50 s",
            "task max s",
            "GetTask calls",
            "adapter RSS idle MiB",
            "adapter RSS peak MiB",
            "stack RSS peak MiB",
        ],
    )
    for r in runs:
        final = ", ".join(f"{name} {n}" for name, n in sorted(r.final.items())) or "none"
        out.add(
            r.size,
            r.created,
            final,
            r.lost,
            r.create_retries,
            r.create_seconds,
            r.wall_seconds,
            r.p50_task_seconds,
            r.max_task_seconds,
            r.gets,
            r.adapter_idle_mib,
            r.adapter_peak_mib,
            r.stack_peak_mib,
        )
        if r.timed_out:
            out.notes.append(
                f"{r.size} tasks: GAVE UP after the {TIME_CAP_SECONDS:.0f} s cap, {r.lost} tasks not final"
            )
        errors = r.create_errors + r.get_errors
        if errors:
            out.notes.append(
                f"{r.size} tasks: errors {dict(errors)}; first of each: "
                + "; ".join(f"{k}: {v[:200]}" for k, v in r.error_samples.items())
            )
    out.notes += [
        "processes: the local stack (`serverless-agents up`), the adapter alone (`serverless-agents "
        "adapter`: its RSS is the figure, idle before the first call and its VmHWM peak), and this one "
        f"(the client: {CLIENT_THREADS // 2} threads sending CreateTask for every task at once while "
        f"{CLIENT_THREADS // 2} others send GetTask for each created, unfinished task every "
        f"{POLL_INTERVAL_SECONDS:.0f} s).",
        f"create retries: CreateTask answered UNAVAILABLE or DEADLINE_EXCEEDED, tried again (at most "
        f"{CREATE_ATTEMPTS} times), as propeller re-evaluates the node; the task id makes it idempotent.",
        "all created s: until the last CreateTask answered; wall s: first CreateTask to the last task seen "
        "final; task s: its CreateTask answered to its final phase seen (3 polls with 1 s waits: 3 s at "
        "best); lost: never seen final within the cap.",
        "stack RSS: moto with every execution, table item and Lambda of the run in one process: the "
        "emulator's cost, not a deployment's.",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, f"{QUICK_SIZES} tasks instead of {SIZES}", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
