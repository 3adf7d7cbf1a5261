"""Flyte's protocol end to end: flyteidl's generated gRPC stubs (what flytepropeller uses) against the
adapter, in front of the local stack; templates serialized and outputs decoded by flytekit itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.flyte.resource_meta import encode_resource_meta
from serverless_agents.local.demo import FlyteClient
from tests.functional.conftest import Harness
from tests.functional.flyte_tasks import ExampleTask, create_request, decode_outputs

pytestmark = pytest.mark.functional

JOB = ExampleTask(
    "flytesnacks.example.job",
    "example_job",
    inputs={"greeting": str, "n": int, "ratio": float, "xs": list[int], "tags": dict[str, str]},
    outputs={
        "greeting": str,
        "n": int,
        "ratio": float,
        "xs": list[int],
        "tags": dict[str, str],
        "polls": int,
    },
    polls=2,
)
LONG_JOB = ExampleTask("flytesnacks.example.long", "example_job_slow", {"n": int}, {"n": int}, polls=1000)
ECHO = ExampleTask(
    "flytesnacks.example.echo", "example_echo", {"text": str, "n": int}, {"text": str, "n": int}
)
_runs = iter(range(10_000))


class Propeller(FlyteClient):
    """The calls flytepropeller's agent plugin makes (the demo's client), plus the health check."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def wait(
        self, resource_meta: bytes, task_type: str, on_change: Any = None, timeout: float = 30
    ) -> agent_pb2.Resource:
        return super().wait(resource_meta, task_type, on_change or (lambda line: None), timeout)


def registry_as_propeller_builds_it(response: agent_pb2.ListAgentsResponse) -> dict[str, dict[int, bool]]:
    """flyteplugins' updateAgentRegistry: task type -> {version: is_sync}, deprecated types first."""
    registry: dict[str, dict[int, bool]] = {}
    for agent in response.agents:
        for task_type in agent.supported_task_types:
            registry[task_type] = {0: agent.is_sync}
        for category in agent.supported_task_categories:
            registry[category.name] = {category.version: agent.is_sync}
    return registry


@pytest.fixture(scope="module")
def propeller(adapter: Adapter) -> Iterator[Propeller]:
    client = Propeller(adapter.address)
    yield client
    client.channel.close()


def execution() -> str:
    return f"adapter-{next(_runs)}"


def test_async_task_runs_to_success_with_the_outputs_flyte_expects(
    propeller: Propeller, harness: Harness
) -> None:
    inputs = {"greeting": "hi", "n": 3, "ratio": 0.25, "xs": [1, 2, 3], "tags": {"team": "ml"}}
    request = create_request(JOB, inputs, execution())

    resource_meta = propeller.tasks.CreateTask(request, timeout=10).resource_meta
    resource = propeller.wait(resource_meta, "example_job")

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(JOB, resource.outputs) == {**inputs, "polls": 2}
    assert {link.name for link in resource.log_links} >= {
        "Step Functions execution",
        "Lambda logs (CloudWatch)",
    }
    assert resource.custom_info["execution_arn"].startswith("arn:aws:states:")
    assert resource.custom_info["state_transitions"] > 0


def test_sync_task_through_execute_task_sync(propeller: Propeller) -> None:
    request = create_request(ECHO, {"text": "ping", "n": 2}, execution())
    resource = propeller.execute_sync(request)  # the header, then the inputs, on one stream

    assert Phase(resource.phase) is Phase.SUCCEEDED
    assert decode_outputs(ECHO, resource.outputs) == {"text": "ping", "n": 2}


def test_delete_task_mid_run_aborts_and_deletes_the_job_once(propeller: Propeller, harness: Harness) -> None:
    resource_meta = propeller.tasks.CreateTask(
        create_request(LONG_JOB, {"n": 1}, execution()), timeout=10
    ).resource_meta
    task_id = json.loads(resource_meta)["task_id"]
    while Phase(propeller.get(resource_meta, "example_job_slow").phase) is not Phase.RUNNING:
        time.sleep(0.1)

    propeller.delete(resource_meta, "example_job_slow")
    resource = propeller.wait(resource_meta, "example_job_slow")

    assert Phase(resource.phase) is Phase.ABORTED
    time.sleep(0.5)
    assert harness.job(task_id)["deletes"] == 1


def test_repeated_create_task_returns_the_same_resource_meta_and_one_job(
    propeller: Propeller, harness: Harness
) -> None:
    request = create_request(JOB, {"greeting": "", "n": 0, "ratio": 0.0, "xs": [], "tags": {}}, execution())
    jobs = harness.job_count()

    first = propeller.tasks.CreateTask(request, timeout=10).resource_meta
    second = propeller.tasks.CreateTask(request, timeout=10).resource_meta

    assert first == second
    propeller.wait(first, "example_job")
    assert len(harness.executions("job", json.loads(first)["task_id"])) == 1
    assert harness.job_count() == jobs + 1


def test_unknown_task_type_is_not_found(propeller: Propeller) -> None:
    request = create_request(
        ExampleTask("x.unknown", "no_such_type", {"n": int}, {"n": int}), {"n": 1}, execution()
    )

    with pytest.raises(grpc.RpcError) as error:
        propeller.tasks.CreateTask(request, timeout=10)

    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "no_such_type" in error.value.details()


@pytest.mark.parametrize("resource_meta", [b"garbage", b"{}", b'{"task_id": 7}', b'{"task_id": "bad id!"}'])
def test_garbage_resource_meta_is_invalid_argument(propeller: Propeller, resource_meta: bytes) -> None:
    with pytest.raises(grpc.RpcError) as error:
        propeller.get(resource_meta, "example_job")

    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "\n" not in error.value.details()


def test_bad_inputs_are_invalid_argument_naming_the_input(propeller: Propeller) -> None:
    request = create_request(ECHO, {"text": "ping", "n": 2}, execution())
    request.template.type = "example_job"  # the job agent: its create route decodes the inputs first
    request.inputs.literals["n"].scalar.primitive.string_value = "two"
    request.template.interface.inputs.variables["n"].type.simple = 1  # INTEGER

    with pytest.raises(grpc.RpcError) as error:
        propeller.tasks.CreateTask(request, timeout=10)

    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.n" in error.value.details()


def test_list_agents_parses_the_way_propeller_reads_it(propeller: Propeller) -> None:
    response = propeller.metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=10)

    registry = registry_as_propeller_builds_it(response)

    assert registry["example_job"] == {0: False}
    assert registry["example_echo"] == {0: True}
    assert propeller.metadata.GetAgent(agent_pb2.GetAgentRequest(name="echo"), timeout=10).agent.is_sync


def test_api_down_is_unavailable_and_the_adapter_keeps_serving() -> None:
    adapter = Adapter(
        "http://127.0.0.1:9", host="127.0.0.1", port=0, call_timeout=2
    ).start()  # nothing listens on 9
    client = Propeller(adapter.address)
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as error:
                client.get(adapter.keys.sign(encode_resource_meta("t1", "job")), "example_job")
            assert error.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "cannot be reached" in error.value.details()
        status = client.health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        client.channel.close()
        adapter.stop()


def test_metrics_count_requests_by_task_type_and_operation(adapter: Adapter, propeller: Propeller) -> None:
    with pytest.raises(grpc.RpcError):
        propeller.get(b"garbage", "example_job")

    registry = adapter.metrics.registry
    assert registry.get_sample_value(
        "flyte_connector_requests_failure_total",
        {"task_type": "example_job", "operation": "get", "error_code": "400"},
    )
    assert registry.get_sample_value(
        "flyte_connector_requests_success_total", {"task_type": "example_job", "operation": "create"}
    )
