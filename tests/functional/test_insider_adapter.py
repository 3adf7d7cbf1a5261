"""The adapter, attacked from inside the cluster: any pod that reaches its port (issue #19, finding 5).

A caller chooses task types (metric labels), holds streams open (threads), and hands back `resource_meta`
of its own making (another agent's task, whose id it can compute from what Flyte shows). Each test is
named after the boundary it guards; each failed before the adapter held it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.flyte.resource_meta import encode_resource_meta
from serverless_agents.local.demo import FlyteClient
from tests.functional.conftest import Harness
from tests.functional.fake_http import self_signed
from tests.functional.flyte_tasks import ExampleTask, create_request

pytestmark = pytest.mark.functional

SLOW_JOB = ExampleTask("insider.slow", "example_job_slow", {"n": int}, {"n": int}, polls=1000)
ECHO = ExampleTask("insider.echo", "example_echo", {"text": str, "n": int}, {"text": str, "n": int})
#: The functional stack's agents and their task types (tests/functional/conftest.py MANIFEST).
DEPLOYED = {"example_job", "example_job_slow", "example_job_short_timeout", "example_echo"}
_runs = iter(range(10_000))


def execution() -> str:
    return f"insider-{next(_runs)}"


@pytest.fixture(scope="module")
def flyte(adapter: Adapter) -> Iterator[FlyteClient]:
    client = FlyteClient(adapter.address)
    yield client
    client.channel.close()


@pytest.fixture(scope="module")
def executor(adapter: Adapter) -> Iterator[service_pb2_grpc.AsyncConnectorServiceStub]:
    channel = grpc.insecure_channel(adapter.address)
    yield service_pb2_grpc.AsyncConnectorServiceStub(channel)
    channel.close()


def refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


# --- metric labels: a caller's task types do not become series -------------------------------------------


def task_type_labels(adapter: Adapter) -> set[str]:
    return {
        sample.labels["task_type"]
        for family in adapter.metrics.registry.collect()
        for sample in family.samples
        if "task_type" in sample.labels
    }


def test_metric_series_hold_only_deployed_task_types(adapter: Adapter, flyte: FlyteClient) -> None:
    """150 calls with task types of a caller's choosing (once: +42 MiB of series, never dropped)."""
    for i in range(50):
        made_up = f"made-up-{i}-" + "x" * 4096
        refused(lambda: flyte.get(b"{}", made_up))  # noqa: B023 (called at once)
        request = create_request(ECHO, {"text": "", "n": i}, execution())
        request.template.type = made_up
        refused(lambda: flyte.tasks.CreateTask(request, timeout=10))  # noqa: B023
        refused(lambda: flyte.execute_sync(request))  # noqa: B023
    flyte.get(flyte.create(create_request(SLOW_JOB, {"n": 0}, execution())), "example_job_slow")

    labels = task_type_labels(adapter)

    assert labels <= DEPLOYED | {"", "other"}, sorted(label[:20] for label in labels)
    assert {"other", "example_job_slow"} <= labels


def test_status_details_quoting_a_caller_stay_short(flyte: FlyteClient) -> None:
    request = create_request(ECHO, {"text": "", "n": 0}, execution())
    request.template.type = "y" * 200_000

    for call in (
        lambda: flyte.execute_sync(request),
        lambda: flyte.metadata.GetAgent(agent_pb2.GetAgentRequest(name="z" * 200_000), timeout=10),
    ):
        code, details = refused(call)
        assert code is grpc.StatusCode.NOT_FOUND, details[:200]
        assert len(details) <= 1000


# --- threads: streams that never end take no more than their share ----------------------------------------


class HeldStreams:
    """ExecuteTaskSync streams that send nothing and never end, until released."""

    def __init__(self, address: str, count: int) -> None:
        self.channel = grpc.insecure_channel(address)
        self._release = threading.Event()
        stub = agent_pb2_grpc.SyncAgentServiceStub(self.channel)
        self.calls = [stub.ExecuteTaskSync(self._nothing()) for _ in range(count)]

    def _nothing(self) -> Iterator[agent_pb2.ExecuteTaskSyncRequest]:
        self._release.wait()
        return
        yield  # a generator that yields nothing

    def ended(self, at_least: int, within: float = 30) -> list[grpc.StatusCode]:
        """The codes of the calls that ended, once `at_least` did (or `within` seconds passed)."""
        deadline = time.monotonic() + within
        while sum(call.done() for call in self.calls) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return [call.code() for call in self.calls if call.done()]

    def release(self) -> None:
        self._release.set()
        for call in self.calls:
            call.cancel()
        self.channel.close()


@pytest.fixture
def own_adapter(harness: Harness) -> Iterator[Adapter]:
    running = Adapter(harness.stack.api_url, host="127.0.0.1", port=0).start()
    yield running
    running.stop(grace=0)


def test_health_and_discovery_answer_while_64_streams_are_held(own_adapter: Adapter) -> None:
    """34 streams that never finished once blocked ListAgents and the health check (liveness: a restart)."""
    streams = HeldStreams(own_adapter.address, 64)
    channel = grpc.insecure_channel(own_adapter.address)
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        listing = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
            agent_pb2.ListAgentsRequest(), timeout=10
        )
        connectors = service_pb2_grpc.ConnectorMetadataServiceStub(channel).ListConnectors(
            connector_pb2.ListConnectorsRequest(), timeout=10
        )

        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert {agent.name for agent in listing.agents} >= {"job", "echo"}
        assert {connector.name for connector in connectors.connectors} >= {"job"}
        # Beyond the 32 workers, streams are answered at once, not queued behind the held ones.
        codes = streams.ended(at_least=64 - 32)
        assert len(codes) >= 64 - 32
        assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        channel.close()
        streams.release()


def test_a_stream_that_never_ends_gives_its_worker_back(harness: Harness) -> None:
    adapter = Adapter(
        harness.stack.api_url, host="127.0.0.1", port=0, workers=1, max_stream_seconds=1
    ).start()
    streams = HeldStreams(adapter.address, 1)
    flyte = FlyteClient(adapter.address)
    try:
        (code,) = streams.ended(at_least=1)
        assert code is grpc.StatusCode.CANCELLED

        # The one worker serves again.
        resource = flyte.execute_sync(create_request(ECHO, {"text": "back", "n": 1}, execution()))
        assert Phase(resource.phase) is Phase.SUCCEEDED
    finally:
        streams.release()
        flyte.channel.close()
        adapter.stop(grace=0)


# --- resource_meta: only what this adapter signed, only for the agent that serves the call ----------------


def victim_task(flyte: FlyteClient) -> tuple[bytes, str]:
    """A running task of the `slowjob` agent, and its id (computable from identifiers Flyte shows)."""
    resource_meta = flyte.create(create_request(SLOW_JOB, {"n": 1}, execution()))
    deadline = time.monotonic() + 30
    while Phase(flyte.get(resource_meta, "example_job_slow").phase) is not Phase.RUNNING:
        assert time.monotonic() < deadline, "the victim's task never ran"
        time.sleep(0.1)
    return resource_meta, str(json.loads(resource_meta)["task_id"])


def attempts(
    flyte: FlyteClient, executor: service_pb2_grpc.AsyncConnectorServiceStub, meta: bytes, task_type: str
) -> dict[str, Any]:
    """Every call that reads or aborts a task, with `meta`, in both protocols."""
    flyte1_logs = agent_pb2.GetTaskLogsRequest(
        resource_meta=meta, task_category=agent_pb2.TaskCategory(name=task_type)
    )
    category = connector_pb2.TaskCategory(name=task_type)
    flyte2_get = connector_pb2.GetTaskRequest(task_category=category, resource_meta=meta)
    flyte2_delete = connector_pb2.DeleteTaskRequest(task_category=category, resource_meta=meta)
    flyte2_logs = connector_pb2.GetTaskLogsRequest(task_category=category, resource_meta=meta)
    return {
        "flyte1 get": lambda: flyte.get(meta, task_type),
        "flyte1 delete": lambda: flyte.delete(meta, task_type),
        "flyte1 logs": lambda: list(flyte.tasks.GetTaskLogs(flyte1_logs, timeout=10)),
        "flyte2 get": lambda: executor.GetTask(flyte2_get, timeout=10),
        "flyte2 delete": lambda: executor.DeleteTask(flyte2_delete, timeout=10),
        "flyte2 logs": lambda: list(executor.GetTaskLogs(flyte2_logs, timeout=10)),
    }


def assert_refused_everywhere(
    flyte: FlyteClient,
    executor: service_pb2_grpc.AsyncConnectorServiceStub,
    meta: bytes,
    task_type: str,
    details_start: str,
) -> None:
    for name, call in attempts(flyte, executor, meta, task_type).items():
        code, details = refused(call)
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (name, details)
        assert details.startswith(details_start), (name, details)


def assert_still_running(flyte: FlyteClient, harness: Harness, resource_meta: bytes, task_id: str) -> None:
    assert Phase(flyte.get(resource_meta, "example_job_slow").phase) is Phase.RUNNING
    assert harness.job(task_id)["deletes"] == 0


def test_a_forged_resource_meta_for_another_agents_task_is_refused(
    flyte: FlyteClient, executor: service_pb2_grpc.AsyncConnectorServiceStub, harness: Harness
) -> None:
    """Once: a forged resource_meta read and aborted another agent's task (its `agent` was ignored)."""
    victim_meta, victim_id = victim_task(flyte)
    forged = [
        encode_resource_meta(victim_id, "job"),  # as the API issues them, naming the attacker's agent
        encode_resource_meta(victim_id, "slowjob"),  # naming the victim's own
        json.dumps({"task_id": victim_id, "agent": "job", "sig": "A" * 43}).encode(),
    ]

    for meta in forged:
        assert_refused_everywhere(flyte, executor, meta, "example_job", "resource_meta")

    assert_still_running(flyte, harness, victim_meta, victim_id)


def test_a_signed_resource_meta_under_another_agents_task_type_is_refused(
    flyte: FlyteClient, executor: service_pb2_grpc.AsyncConnectorServiceStub, harness: Harness
) -> None:
    victim_meta, victim_id = victim_task(flyte)

    assert_refused_everywhere(
        flyte, executor, victim_meta, "example_job", "resource_meta.agent: 'slowjob' does not serve"
    )

    assert_still_running(flyte, harness, victim_meta, victim_id)


def test_a_tampered_resource_meta_is_refused(
    flyte: FlyteClient, executor: service_pb2_grpc.AsyncConnectorServiceStub, harness: Harness
) -> None:
    victim_meta, victim_id = victim_task(flyte)
    own = json.loads(flyte.create(create_request(SLOW_JOB, {"n": 2}, execution())))
    tampered = json.dumps({**own, "task_id": victim_id}).encode()  # the attacker's signature, the victim's id

    assert_refused_everywhere(
        flyte, executor, tampered, "example_job_slow", "resource_meta.sig: does not match"
    )

    assert_still_running(flyte, harness, victim_meta, victim_id)


def test_an_unsigned_resource_meta_is_refused_unless_migration_allows_it(
    flyte: FlyteClient, harness: Harness
) -> None:
    victim_meta, victim_id = victim_task(flyte)
    unsigned = encode_resource_meta(victim_id, "slowjob")  # what the API issues, as before signing

    code, details = refused(lambda: flyte.get(unsigned, "example_job_slow"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "SA_RESOURCE_META_ALLOW_UNSIGNED" in details

    from serverless_agents.flyte.resource_meta import ResourceMetaKeys

    migrating = Adapter(
        harness.stack.api_url,
        host="127.0.0.1",
        port=0,
        keys=ResourceMetaKeys(["k" * 32], allow_unsigned=True),
    ).start()
    old_propeller = FlyteClient(migrating.address)
    try:
        assert Phase(old_propeller.get(unsigned, "example_job_slow").phase) is Phase.RUNNING
        code, _ = refused(lambda: old_propeller.get(unsigned, "example_job"))  # the agent is still checked
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        old_propeller.channel.close()
        migrating.stop(grace=0)
    assert_still_running(flyte, harness, victim_meta, victim_id)


def test_rotated_keys_verify_what_the_previous_key_signed(harness: Harness) -> None:
    from serverless_agents.flyte.resource_meta import ResourceMetaKeys

    old, new = "o" * 32, "n" * 32
    before = Adapter(harness.stack.api_url, host="127.0.0.1", port=0, keys=ResourceMetaKeys([old])).start()
    rotated = Adapter(
        harness.stack.api_url, host="127.0.0.1", port=0, keys=ResourceMetaKeys([new, old])
    ).start()
    retired = Adapter(harness.stack.api_url, host="127.0.0.1", port=0, keys=ResourceMetaKeys([new])).start()
    clients = [FlyteClient(a.address) for a in (before, rotated, retired)]
    try:
        issued = clients[0].create(create_request(SLOW_JOB, {"n": 3}, execution()))

        assert Phase(clients[1].get(issued, "example_job_slow").phase) in (Phase.RUNNING, Phase.QUEUED)
        code, details = refused(lambda: clients[2].get(issued, "example_job_slow"))
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert "SA_RESOURCE_META_KEYS" in details
        reissued = clients[1].create(create_request(SLOW_JOB, {"n": 3}, execution()))
        assert Phase(clients[2].get(reissued, "example_job_slow").phase) in (Phase.RUNNING, Phase.QUEUED)
    finally:
        for client in clients:
            client.channel.close()
        for adapter in (before, rotated, retired):
            adapter.stop(grace=0)


def test_resource_meta_stays_small_json_naming_the_task_and_agent(flyte: FlyteClient) -> None:
    meta = flyte.create(create_request(SLOW_JOB, {"n": 4}, execution()))

    assert len(meta) < 250
    assert set(json.loads(meta)) == {"task_id", "agent", "sig"}


# --- TLS ------------------------------------------------------------------------------------------------


def test_tls_serves_the_agent_services_and_plain_health_on_its_own_port(harness: Harness) -> None:
    pytest.importorskip("cryptography")
    certificate, key = self_signed("serverless-agents-adapter")
    adapter = Adapter(
        harness.stack.api_url, host="127.0.0.1", port=0, tls=(certificate, key), health_port=0
    ).start()
    secure = grpc.secure_channel(adapter.address, grpc.ssl_channel_credentials(root_certificates=certificate))
    plain = grpc.insecure_channel(adapter.address)
    probe = grpc.insecure_channel(f"127.0.0.1:{adapter.health_port}")
    try:
        listing = agent_pb2_grpc.AgentMetadataServiceStub(secure).ListAgents(
            agent_pb2.ListAgentsRequest(), timeout=10
        )
        assert {agent.name for agent in listing.agents} >= {"job"}
        code, _ = refused(
            lambda: agent_pb2_grpc.AgentMetadataServiceStub(plain).ListAgents(
                agent_pb2.ListAgentsRequest(), timeout=5
            )
        )
        assert code is grpc.StatusCode.UNAVAILABLE
        health = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The probe's port serves health alone.
        code, _ = refused(
            lambda: agent_pb2_grpc.AgentMetadataServiceStub(probe).ListAgents(
                agent_pb2.ListAgentsRequest(), timeout=5
            )
        )
        assert code is grpc.StatusCode.UNIMPLEMENTED
    finally:
        for channel in (secure, plain, probe):
            channel.close()
        adapter.stop(grace=0)
