"""A burst of CreateTask, as Flyte 2's executor sends one (issue #20, item 6).

The executor reconciles up to 512 task actions at once (flyteorg/flyte executor/pkg/config/config.go,
`MaxConcurrentReconciles`); each new action's reconcile calls the connector plugin's Create
(flyteplugins/go/tasks/plugins/webapi/connector/plugin.go), which calls CreateTask with the connector's
timeout (`getFinalContext` in client.go: `defaultTimeout`, 10 s in config.go). Nothing in between spaces the
calls out: the executor's resource manager grants every allocation (executor/pkg/plugin/
resource_manager.go) and the webapi `WriteRateLimiter` is never applied. Any error from Create fails the
attempt (`launch` in flyteplugins/go/tasks/pluginmachinery/internal/webapi/launcher.go): a missed deadline
or a RESOURCE_EXHAUSTED costs the task a retry, and the next attempt is another task (another output
prefix), so a create that went on after its caller gave up would leave a job nobody gets or deletes.

Each test is named after the boundary it guards.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import urllib3
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import task_id_for
from serverless_agents.local.demo import FlyteClient
from tests.functional.conftest import MANIFEST, Harness
from tests.functional.flyte2_tasks import Executor, PluginTask
from tests.functional.flyte_tasks import ExampleTask, create_request
from tests.functional.test_insider_adapter import HeldStreams

pytestmark = pytest.mark.functional

#: The executor's burst as the issue measures it: 200 concurrent CreateTask calls, each with its 10 s.
BURST = 200
#: One poll a second apart, then done: the burst's tasks end soon after it, and cost little meanwhile.
BURST_TASK = PluginTask(
    "flytesnacks.burst.job", "example_job_slow", {"n": int}, {"n": int, "polls": int}, polls=1
)
JOB = ExampleTask("insider.burst.job", "example_job", {"n": int}, {"n": int, "polls": int}, polls=1)
_runs = iter(range(10_000))


def run_name() -> str:
    return f"burst-{next(_runs)}"


def task_id_of(resource_meta: bytes) -> str:
    return str(json.loads(resource_meta)["task_id"])


# --- the adapter: a burst waits its turn within its deadline -----------------------------------------------


def hold_the_one_worker(adapter: Adapter) -> HeldStreams:
    """A stream that holds the adapter's one worker, once it does: a call without a deadline (which may
    not wait) is then answered RESOURCE_EXHAUSTED."""
    streams = HeldStreams(adapter.address, 1)
    probe = agent_pb2.GetTaskRequest(resource_meta=b"{}", task_category=agent_pb2.TaskCategory(name="x"))
    tasks = agent_pb2_grpc.AsyncAgentServiceStub(streams.channel)
    deadline = time.monotonic() + 30
    while True:
        try:
            tasks.GetTask(probe)
        except grpc.RpcError as e:
            if e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                return streams
        assert time.monotonic() < deadline, "the stream never took the worker"
        time.sleep(0.05)


def test_a_task_call_that_finds_every_worker_busy_waits_for_one_within_its_deadline(harness: Harness) -> None:
    """With its one worker held, a CreateTask used to be answered RESOURCE_EXHAUSTED at once: a failed
    attempt for the executor. It waits for the worker, and health and discovery answer meanwhile."""
    adapter = Adapter(harness.stack.api_url, host="127.0.0.1", port=0, workers=1).start()
    streams = hold_the_one_worker(adapter)
    flyte = FlyteClient(adapter.address)
    channel = grpc.insecure_channel(adapter.address)
    try:
        waiting = flyte.tasks.CreateTask.future(
            create_request(JOB, {"n": 1}, run_name()), timeout=Executor.TIMEOUT
        )
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        listing = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
            agent_pb2.ListAgentsRequest(), timeout=5
        )
        assert not waiting.done()  # still waiting for the worker the stream holds

        streams.release()  # the worker is free: the waiting create takes it

        assert waiting.result().resource_meta
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert {agent.name for agent in listing.agents} >= {"job"}
    finally:
        streams.release()
        flyte.channel.close()
        channel.close()
        adapter.stop(grace=0)


def test_a_waiting_call_whose_deadline_runs_out_starts_nothing(harness: Harness) -> None:
    adapter = Adapter(harness.stack.api_url, host="127.0.0.1", port=0, workers=1).start()
    streams = hold_the_one_worker(adapter)
    flyte = FlyteClient(adapter.address)
    request = create_request(JOB, {"n": 1}, run_name())
    try:
        with pytest.raises(grpc.RpcError) as refused:
            flyte.tasks.CreateTask(request, timeout=1.5)

        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
        assert "deadline" in refused.value.details()
        task_id = task_id_for("job", request.task_execution_metadata.task_execution_id, request.output_prefix)
        assert harness.item(task_id) == {}
    finally:
        streams.release()
        flyte.channel.close()
        adapter.stop(grace=0)


# --- the API: a create its caller no longer waits for starts nothing --------------------------------------


def post_create(harness: Harness, request: agent_pb2.CreateTaskRequest, waits_ms: str, timeout: float) -> int:
    """POST /v1/tasks as the adapter's client sends it, saying the caller waits `waits_ms`."""
    response = urllib3.request(
        "POST",
        f"{harness.stack.api_url}/v1/tasks",
        body=json.dumps(wire.to_dict(request)).encode(),
        headers={"Content-Type": "application/json", wire.CLIENT_TIMEOUT_HEADER: waits_ms},
        timeout=timeout,
        retries=False,
    )
    return int(response.status)


def abandon_create(harness: Harness, request: agent_pb2.CreateTaskRequest, waits_ms: str) -> None:
    """POST /v1/tasks, then hang up without reading the answer: a caller that stopped waiting mid-create.
    (Not a client read timeout: the local API runs in this process, and a thread holding the GIL through
    the whole create hands the client an answer already there, whatever its timeout.)"""
    api = urlsplit(harness.stack.api_url)
    connection = http.client.HTTPConnection(api.hostname or "127.0.0.1", api.port, timeout=10)
    try:
        connection.request(
            "POST",
            f"{api.path.rstrip('/')}/v1/tasks",
            body=json.dumps(wire.to_dict(request)).encode(),
            headers={"Content-Type": "application/json", wire.CLIENT_TIMEOUT_HEADER: waits_ms},
        )
    finally:
        connection.close()


def test_a_create_whose_caller_has_stopped_waiting_starts_nothing(harness: Harness) -> None:
    """The executor's next attempt is another task: a job started for this one would run unwatched."""
    request = create_request(JOB, {"n": 1}, run_name())
    task_id = task_id_for("job", request.task_execution_metadata.task_execution_id, request.output_prefix)
    jobs = harness.job_count()

    assert post_create(harness, request, "0", timeout=10) == 504

    assert harness.item(task_id) == {}
    assert harness.executions("job", task_id) == []
    assert harness.job_count() == jobs


def test_a_create_whose_deadline_passes_mid_create_is_the_same_task_when_created_again(
    harness: Harness, adapter: Adapter
) -> None:
    """The caller stops waiting while the API writes the task and starts its execution (the API finishes
    what it began); the executor's repeated CreateTask for the attempt gets the same task, no second
    execution and no second job."""
    request = create_request(JOB, {"n": 1}, run_name())
    task_id = task_id_for("job", request.task_execution_metadata.task_execution_id, request.output_prefix)
    abandon_create(harness, request, "10000")
    deadline = time.monotonic() + 30
    while not harness.executions("job", task_id):  # the API goes on after its caller left
        assert time.monotonic() < deadline, "the abandoned create never started its execution"
        time.sleep(0.05)
    flyte = FlyteClient(adapter.address)
    try:
        again = flyte.create(request)
    finally:
        flyte.channel.close()

    assert task_id_of(again) == task_id
    assert Phase(harness.wait(task_id).phase) is Phase.SUCCEEDED
    assert len(harness.executions("job", task_id)) == 1  # one execution: one job, created once


def test_a_throttled_create_is_tried_again_within_its_deadline(harness: Harness, adapter: Adapter) -> None:
    """API Gateway's stage limit (100 requests a second, bursts of 200: infra's `api_throttle_*`) or
    Lambda's concurrency answers a burst's excess 429, having done nothing: it used to reach the executor as
    UNAVAILABLE, a failed attempt."""
    function = harness.stack.plan.api.name
    before = harness.stack.lambdas.invocations[function]
    harness.stack.lambdas.inject_fault(function, "throttle", times=3)
    flyte = FlyteClient(adapter.address)
    request = create_request(JOB, {"n": 1}, run_name())
    try:
        resource_meta = flyte.create(request)
    finally:
        flyte.channel.close()

    task_id = task_id_for("job", request.task_execution_metadata.task_execution_id, request.output_prefix)
    assert task_id_of(resource_meta) == task_id
    assert harness.stack.lambdas.invocations[function] == before + 4  # three throttled, then created


# --- the whole path: the executor's burst, every create within its deadline -------------------------------


#: Any free port for the HTTP API and for `up`'s own adapter (unused here).
UP_PORTS = ("--port", "0", "--grpc-port", "0", "--aws-port", "0")  # none fixed: another `up` may run


@pytest.fixture
def stack_up(tmp_path: Path) -> Iterator[str]:
    """`serverless-agents up` in a process of its own, as a developer starts it (and as the executor's pods
    reach a deployment: not sharing the caller's interpreter); its HTTP API's URL."""
    manifest = tmp_path / "agents.toml"
    manifest.write_text(MANIFEST)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "burst",
        "AWS_SECRET_ACCESS_KEY": "burst",
        "PYTHONUNBUFFERED": "1",
    }
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"}
    up = subprocess.Popen(
        [sys.executable, "-m", "serverless_agents.cli", "up", "--manifest", str(manifest), *UP_PORTS],
        env={k: v for k, v in env.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if match := re.search(r"HTTP API on (\S+),", line):
                break
        else:
            raise AssertionError(f"serverless-agents up exited with {up.wait()}")
        # Its output is drained, or a full pipe would stall it.
        threading.Thread(target=up.stdout.read, daemon=True).start()
        yield match[1]
    finally:
        up.terminate()
        up.wait(30)


def test_a_burst_of_200_concurrent_creates_all_answer_within_the_executors_deadline(stack_up: str) -> None:
    """Flyte 2's executor's reconcile burst through the adapter and the local stack: 200 CreateTask calls
    at once, each with the executor's 10 s, all answered with a task (1 in 5 missed the deadline, and
    every call past the adapter's 32 workers was answered RESOURCE_EXHAUSTED)."""
    adapter = Adapter(stack_up, host="127.0.0.1", port=0).start()
    executor = Executor(adapter.address)
    run = run_name()
    requests = [executor.create_request(BURST_TASK, {"n": i}, run, action=f"a{i}") for i in range(BURST)]
    start = threading.Barrier(BURST)
    answers: dict[int, bytes] = {}
    failures: dict[int, str] = {}

    def reconcile(i: int) -> None:
        start.wait()
        try:
            answers[i] = executor.create(requests[i])  # Executor.TIMEOUT: the 10 s deadline
        except grpc.RpcError as e:
            failures[i] = f"{e.code().name}: {e.details()}"

    threads = [threading.Thread(target=reconcile, args=(i,)) for i in range(BURST)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        executor.channel.close()
        adapter.stop(grace=0)

    assert failures == {}, f"{len(failures)} of {BURST} failed, e.g. {next(iter(failures.values()))}"
    ids = [task_id_of(meta) for meta in answers.values()]
    assert len(set(ids)) == BURST, (len(answers), sorted(i for i in ids if ids.count(i) > 1)[:4])
