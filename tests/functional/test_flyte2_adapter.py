"""Flyte 2's protocol end to end: flyteidl2's generated stubs, called the way Flyte 2's executor calls its
connectors (flyteorg/flyte flyteplugins/go/tasks/plugins/webapi/connector/{plugin.go,client.go}), against
the adapter in front of the local stack; task templates serialized, inputs encoded and outputs decoded by
the `flyte` SDK 2.x (flyte/connectors/_connector.py, flyte/_internal/runtime/task_serde.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl2.connector import connector_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from tests.functional import flyte_tasks
from tests.functional.conftest import MANIFEST as STACK_MANIFEST
from tests.functional.conftest import Harness
from tests.functional.flyte2_connectors import JOBS, fingerprint
from tests.functional.flyte2_tasks import Executor, PluginTask, decode_outputs, file_sensor
from tests.functional.sensors import BUCKET
from tests.functional.sensors import MANIFEST as SENSORS_MANIFEST

pytestmark = pytest.mark.functional

TOKEN = "tok-from-secrets-manager-7f3a"  # the manifest's secret, in (emulated) Secrets Manager
EXECUTOR_SECRET = "s3cr3t-from-the-flyte-executor-91c2"  # what Flyte 2's executor would resolve and send


def agents_of(manifest: str) -> str:
    return manifest[manifest.index("[agents.") :]


# The functional stack's job agents, the sensor stack's FileSensor (poked by BUCKET's events), and a Flyte 2
# connector with a secret.
MANIFEST = (
    STACK_MANIFEST.replace('"sa-test"', '"sa-flyte2"')
    + agents_of(SENSORS_MANIFEST)
    + """
[agents.countdown]
class = "tests.functional.flyte2_connectors:CountdownConnector"
poll = { initial = 0, factor = 1.0, cap = 0 }
secrets = { token = "countdown-token" }
"""
)

JOB_TYPES: dict[str, type] = {
    "greeting": str,
    "n": int,
    "ratio": float,
    "xs": list[int],
    "tags": dict[str, str],
}
JOB = PluginTask("flytesnacks.flyte2.job", "example_job", JOB_TYPES, {**JOB_TYPES, "polls": int}, polls=2)
JOB_INPUTS = {"greeting": "hi", "n": 3, "ratio": 0.25, "xs": [1, 2, 3], "tags": {"team": "ml"}}
COUNTDOWN = PluginTask(
    "flytesnacks.flyte2.countdown",
    "countdown",
    {"greeting": str, "xs": list[int]},
    {"greeting": str, "total": int, "token": str},
    polls=2,
    configs={"region": "eu-west-1"},
)
_runs = iter(range(10_000))


def run_name() -> str:
    return f"r{next(_runs)}x2"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("flyte2") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        stack.client("secretsmanager").create_secret(Name="countdown-token", SecretString=TOKEN)
        stack.create_bucket(BUCKET)
        yield Harness(stack)


def task_id(resource_meta: bytes) -> str:
    return str(json.loads(resource_meta)["task_id"])


def test_example_job_runs_to_success_with_outputs_the_sdk_decodes(executor: Executor) -> None:
    resource = executor.run(JOB, JOB_INPUTS, run_name())

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(JOB, resource) == {**JOB_INPUTS, "polls": 2}
    assert {link.name for link in resource.log_links} >= {"Example job", "Step Functions execution"}
    assert resource.custom_info["execution_arn"].startswith("arn:aws:states:")


def test_file_sensor_succeeds_when_its_file_arrives(executor: Executor, harness: Harness) -> None:
    sensor = file_sensor("flytesnacks.flyte2.files")
    path = f"s3://{BUCKET}/incoming/{run_name()}.csv"
    request = executor.create_request(sensor, {"path": path}, run_name())
    resource_meta = executor.create(request)
    assert Phase(executor.get(request, resource_meta).phase) is Phase.RUNNING

    harness.stack.client("s3").put_object(Bucket=BUCKET, Key=path.split("/", 3)[3], Body=b"a,b\n")
    resource = executor.wait(request, resource_meta)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(sensor, resource) == {}


def test_delete_task_mid_run_aborts_and_deletes_the_job_once(executor: Executor, harness: Harness) -> None:
    slow = PluginTask("flytesnacks.flyte2.slow", "example_job_slow", {"n": int}, {"n": int}, polls=1000)
    request = executor.create_request(slow, {"n": 1}, run_name())
    resource_meta = executor.create(request)
    while Phase(executor.get(request, resource_meta).phase) is not Phase.RUNNING:
        time.sleep(0.1)

    executor.delete(request, resource_meta)
    resource = executor.wait(request, resource_meta)

    assert Phase(resource.phase) is Phase.ABORTED
    deadline = time.monotonic() + 20
    while harness.job(task_id(resource_meta))["deletes"] == 0:
        assert time.monotonic() < deadline, "the agent's delete never ran"
        time.sleep(0.1)
    executor.delete(request, resource_meta)  # the executor may repeat it: still one delete
    assert harness.job(task_id(resource_meta))["deletes"] == 1


def test_repeated_create_task_is_one_task_and_one_job(executor: Executor, harness: Harness) -> None:
    request = executor.create_request(JOB, JOB_INPUTS, run_name())
    jobs = harness.job_count()

    first, second = executor.create(request), executor.create(request)

    assert first == second
    executor.wait(request, first)
    assert len(harness.executions("job", task_id(first))) == 1
    assert harness.job_count() == jobs + 1


def test_each_action_and_attempt_is_its_own_task(executor: Executor) -> None:
    run = run_name()
    metas = {
        executor.create(executor.create_request(JOB, JOB_INPUTS, run, action=action, attempt=attempt))
        for action, attempt in [("a0", 0), ("a0", 1), ("a1", 0)]
    }

    assert len(metas) == 3


def test_unknown_task_type_is_not_found(executor: Executor) -> None:
    request = executor.create_request(
        PluginTask("x.unknown", "no_such_type", {"n": int}, {}), {"n": 1}, run_name()
    )

    with pytest.raises(grpc.RpcError) as error:
        executor.create(request)

    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "no_such_type" in error.value.details()


@pytest.mark.parametrize(
    "resource_meta", [b"garbage", b"{}", b'{"task_id": 7}', b'{"task_id": "bad id!"}', b"\xff"]
)
def test_garbage_resource_meta_is_invalid_argument(executor: Executor, resource_meta: bytes) -> None:
    request = executor.create_request(JOB, JOB_INPUTS, run_name())

    for call in (executor.get, executor.delete):
        with pytest.raises(grpc.RpcError) as error:
            call(request, resource_meta)
        assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith(("resource_meta", "task_id:"))  # names the field
        assert "\n" not in error.value.details()


def test_inputs_named_twice_are_invalid_argument(executor: Executor) -> None:
    request = executor.create_request(JOB, JOB_INPUTS, run_name())
    request.inputs.literals.append(request.inputs.literals[0])

    with pytest.raises(grpc.RpcError) as error:
        executor.create(request)

    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "given twice" in error.value.details()


def everything_that_persists(harness: Harness) -> str:
    """The tasks table, every execution's input and history, and every object in every bucket."""
    stack = harness.stack
    parts: list[Any] = [stack.client("dynamodb").scan(TableName=stack.tasks_table)["Items"]]
    sfn = stack.client("stepfunctions")
    for arn in stack.state_machine_arns.values():
        for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
            parts.append(sfn.describe_execution(executionArn=execution["executionArn"]))
            parts.append(sfn.get_execution_history(executionArn=execution["executionArn"])["events"])
    s3 = stack.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            parts.append(s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read().decode())
    return json.dumps(parts, default=str)


def test_connection_secrets_the_template_does_not_declare_are_refused_naming_keys_only(
    executor: Executor, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """plugin.go (Create) reads the Connection out of the template's custom: its secrets' keys are exactly
    `custom.secrets`' keys. Other keys, and secrets for an agent that is no Flyte 2 connector, are refused
    before anything is written, naming keys, never a value."""
    caplog.set_level(logging.INFO)
    declared = PluginTask(
        "flytesnacks.flyte2.secret",
        "countdown",
        {"greeting": str, "xs": list[int]},
        {},
        secrets={"api_key": "tok"},
    )
    undeclared = executor.create_request(
        declared, {"greeting": "x", "xs": [1]}, run_name(), secrets={"tok": EXECUTOR_SECRET}
    )
    undeclared.connection.secrets["other"] = EXECUTOR_SECRET
    job_with_secret = PluginTask("flytesnacks.flyte2.j", "example_job", {"n": int}, {}, secrets={"k": "tok"})
    to_a_job = executor.create_request(
        job_with_secret, {"n": 1}, run_name(), secrets={"tok": EXECUTOR_SECRET}
    )
    items = harness.table_size()

    answers = []
    for request, problem in [(undeclared, "custom.secrets"), (to_a_job, "not a Flyte 2 connector")]:
        with pytest.raises(grpc.RpcError) as error:
            executor.create(request)
        assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith("connection.secrets:")
        assert problem in error.value.details()
        answers.append(error.value.details())

    assert harness.table_size() == items
    # The manifest's secret did reach a connector: run one to completion, then look for either value.
    resource = executor.run(COUNTDOWN, {"greeting": "hi", "xs": [1]}, run_name())
    assert decode_outputs(COUNTDOWN, resource)["token"] == fingerprint(TOKEN)
    persisted = everything_that_persists(harness) + json.dumps(answers) + str(resource) + caplog.text
    assert persisted.count(EXECUTOR_SECRET) == 0
    assert persisted.count(TOKEN) == 0


def test_a_flyte2_connector_runs_unchanged_in_the_state_machine(executor: Executor, harness: Harness) -> None:
    run = run_name()
    request = executor.create_request(COUNTDOWN, {"greeting": "hello", "xs": [1, 2, 3]}, run)
    resource_meta = executor.create(request)
    resource = executor.wait(request, resource_meta)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert resource.message == "lift-off"
    assert decode_outputs(COUNTDOWN, resource) == {
        "greeting": "hello!",
        "total": 6,
        "token": fingerprint(TOKEN),
    }
    assert "https://countdown.invalid/eu-west-1/jobs/x" in {link.uri for link in resource.log_links}
    assert resource.custom_info["region"] == "eu-west-1"
    (job,) = [job for job in JOBS.values() if job["run"] == run]
    assert job["inputs"] == {"greeting": "hello", "xs": [1, 2, 3]}
    assert job["output_prefix"] == request.output_prefix
    assert (job["gets"], job["deletes"]) == (2, 0)
    assert job["template"] == request.template  # the executor's own, not a Flyte 1 round trip
    assert len(harness.executions("countdown", task_id(resource_meta))) == 1


def test_the_same_agent_from_a_flyte1_and_a_flyte2_client(
    executor: Executor, adapter: Adapter, harness: Harness
) -> None:
    flytekit_job = flyte_tasks.ExampleTask(
        "flytesnacks.flyte1.job", "example_job", JOB_TYPES, {**JOB_TYPES, "polls": int}, polls=2
    )
    propeller = FlyteClient(adapter.address)
    try:
        flyte1_meta = propeller.create(flyte_tasks.create_request(flytekit_job, JOB_INPUTS, run_name()))
        flyte1 = propeller.wait(flyte1_meta, "example_job", lambda line: None)
    finally:
        propeller.channel.close()
    flyte2_request = executor.create_request(JOB, JOB_INPUTS, run_name())
    flyte2_meta = executor.create(flyte2_request)
    flyte2 = executor.wait(flyte2_request, flyte2_meta)

    assert task_id(flyte1_meta) != task_id(flyte2_meta)
    assert {json.loads(flyte1_meta)["agent"], json.loads(flyte2_meta)["agent"]} == {"job"}
    assert flyte_tasks.decode_outputs(flytekit_job, flyte1.outputs) == {**JOB_INPUTS, "polls": 2}
    assert decode_outputs(JOB, flyte2) == {**JOB_INPUTS, "polls": 2}


def test_list_connectors_offers_async_agents_and_sensors_as_the_executor_reads_them(
    executor: Executor,
) -> None:
    response = executor.metadata.ListConnectors(
        connector_pb2.ListConnectorsRequest(), timeout=Executor.TIMEOUT
    )
    # client.go updateRegistry: every supported task category of every connector is routed to it.
    registry = {
        (category.name, category.version): connector.name
        for connector in response.connectors
        for category in connector.supported_task_categories
    }

    assert registry[("example_job", 0)] == "job"
    assert registry[("countdown", 0)] == "countdown"
    assert registry[("sensor", 0)] == "files"
    assert "echo" not in registry.values()  # a sync agent: Flyte 2 has no sync service
    got = executor.metadata.GetConnector(connector_pb2.GetConnectorRequest(name="countdown"), timeout=10)
    assert got.connector.supported_task_categories[0].name == "countdown"
    with pytest.raises(grpc.RpcError) as error:
        executor.metadata.GetConnector(connector_pb2.GetConnectorRequest(name="echo"), timeout=10)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_health_and_metrics_cover_both_protocols(adapter: Adapter, executor: Executor) -> None:
    health = health_pb2_grpc.HealthStub(executor.channel)
    for service in (
        "flyteidl2.connector.AsyncConnectorService",
        "flyteidl2.connector.ConnectorMetadataService",
    ):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError):
        executor.get(executor.create_request(JOB, JOB_INPUTS, run_name()), b"garbage")

    registry = adapter.metrics.registry
    assert registry.get_sample_value(
        "flyte_connector_requests_failure_total",
        {"task_type": "example_job", "operation": "get", "error_code": "400"},
    )


def test_a_flyte2_connector_serves_a_flyte1_client_too(adapter: Adapter) -> None:
    flytekit_countdown = flyte_tasks.ExampleTask(
        "flytesnacks.flyte1.countdown",
        "countdown",
        {"greeting": str, "xs": list[int]},
        {"greeting": str, "total": int, "token": str},
        polls=2,
        configs={"region": "eu-west-1"},
    )
    propeller = FlyteClient(adapter.address)
    try:
        request = flyte_tasks.create_request(flytekit_countdown, {"greeting": "yo", "xs": [4]}, run_name())
        resource = propeller.wait(propeller.create(request), "countdown", lambda line: None)
    finally:
        propeller.channel.close()

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert flyte_tasks.decode_outputs(flytekit_countdown, resource.outputs) == {
        "greeting": "yo!",
        "total": 4,
        "token": fingerprint(TOKEN),
    }
