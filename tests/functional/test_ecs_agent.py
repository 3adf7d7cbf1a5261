"""The ECS Fargate agent through the whole stack: HTTP API, the real state machine and handlers, ECS on moto,
driven with the public `AgentTestClient`.

moto records RunTask, DescribeTasks and StopTask, but no container ever runs: left alone, its default
`ecs::task` transition walks a task from RUNNING to STOPPED with exit code 0 after four DescribeTasks, which
would make every task "succeed". The fixture freezes that transition, and the test plays the Fargate host
instead: `FargateHost.report` sets what ECS would report (last status, exit code, stop reason) on moto's task
record, and `FargateHost.run_container` does what pyflyte-execute does in the container (read `--inputs`,
write `outputs.pb` or `error.pb` under `--output-prefix`). The private `Harness` reads only the execution's
status, which the kit does not show.

Task templates are serialized by flytekit from a task of the documented `EcsFargateTask` class.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import errors_pb2, identifier_pb2, tasks_pb2
from flyteidl.core.literals_pb2 import LiteralMap
from flytekit import PythonFunctionTask, Resources, task
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extend import TaskPlugins
from flytekit.tools.translator import get_serializable

from serverless_agents.agent import Phase
from serverless_agents.agents.ecs import FargateSize, fargate_size, placeholder_values, render_args
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.exceptions import AgentError
from serverless_agents.flyte.literals import decode_literal_map, encode_literal_map
from serverless_agents.local.stack import ACCOUNT, LocalStack
from serverless_agents.testing import AgentTestClient, interface_for
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional

CLUSTER = "flyte-tasks"
METADATA_BUCKET = "flyte-metadata"
LOG_GROUP = "/flyte/ecs-tasks"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"


# --- the user's side: the flytekit task class from docs/agents/ecs.md ---


@dataclass
class EcsFargate:
    """Per-task settings; each one set overrides the agent's config in agents.toml."""

    cluster: str | None = None
    subnets: list[str] | None = None
    security_groups: list[str] | None = None
    assign_public_ip: bool | None = None
    task_role_arn: str | None = None


class EcsFargateTask(PythonFunctionTask[EcsFargate]):
    """A Python function run by the ecs_fargate agent: flytekit's usual container, another task type."""

    _TASK_TYPE = "ecs_fargate"

    def __init__(self, task_config: EcsFargate | None, task_function: Callable[..., Any], **kwargs: Any):
        super().__init__(
            task_config=task_config or EcsFargate(),
            task_function=task_function,
            task_type=self._TASK_TYPE,
            **kwargs,
        )

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        return {key: value for key, value in asdict(self.task_config).items() if value is not None}


TaskPlugins.register_pythontask_plugin(EcsFargate, EcsFargateTask)


@task(task_config=EcsFargate(), requests=Resources(cpu="500m", mem="3Gi"), environment={"GREETING": "hi"})
def add(a: int, b: int) -> int:
    return a + b


@task(task_config=EcsFargate(cluster="no-such-cluster"))
def add_on_a_missing_cluster(a: int, b: int) -> int:
    return a + b


@task(task_config=EcsFargate(subnets=[]))
def add_without_subnets(a: int, b: int) -> int:
    return a + b


# --- the stack ---


def _manifest(subnets: list[str], security_groups: list[str], poll_seconds: int = 1) -> str:
    return f"""
[deployment]
name = "sa-ecs"

[agents.ecs]
class = "serverless_agents.agents.ecs:EcsFargateAgent"
poll = {{ initial = {poll_seconds}, factor = 1.0, cap = {poll_seconds} }}

[agents.ecs.config]
cluster = "{CLUSTER}"
subnets = {json.dumps(subnets)}
security_groups = {json.dumps(security_groups)}
execution_role_arn = "{EXECUTION_ROLE}"
log_group = "{LOG_GROUP}"
"""


_executions = itertools.count()


class FargateHost:
    """The parts of ECS and of the container that moto does not play."""

    def __init__(self, stack: LocalStack, subnet: str) -> None:
        self.stack = stack
        self.subnet = subnet
        self.ecs = stack.client("ecs")
        self.s3 = stack.client("s3")

    def ecs_request(self, task_function: Any, **inputs: Any) -> agent_pb2.CreateTaskRequest:
        """A CreateTaskRequest as propeller sends it for a flytekit-serialized ecs_fargate task."""
        settings = SerializationSettings(
            project="demo", domain="development", version="1", image_config=ImageConfig.auto_default_image()
        )
        template = get_serializable(OrderedDict(), settings, task_function).template.to_flyte_idl()
        execution = f"ecs{next(_executions)}"
        execution_id = identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id="n0",
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project="demo", domain="development", name=execution
                ),
            ),
        )
        return agent_pb2.CreateTaskRequest(
            template=template,
            inputs=encode_literal_map(inputs, template.interface.inputs.variables, prefix="inputs"),
            output_prefix=f"s3://{METADATA_BUCKET}/metadata/{execution}/n0/data/0",
            task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution_id),
        )

    def describe(self, task_arn: str) -> dict[str, Any]:
        return dict(self.ecs.describe_tasks(cluster=CLUSTER, tasks=[task_arn])["tasks"][0])

    def report(
        self,
        task_arn: str,
        last_status: str,
        *,
        exit_code: int | None = None,
        container_reason: str = "",
        stop_code: str = "",
        stopped_reason: str = "",
    ) -> None:
        """Set what ECS reports about the task, as the Fargate host would. moto has no API for "the
        container exited", so this writes moto's task record: the one place the tests reach into moto."""
        from moto.ecs.models import ecs_backends

        record = ecs_backends[ACCOUNT][self.stack.region].tasks[CLUSTER][task_arn]
        container = record.containers[0]
        container.last_status = last_status
        if last_status == "STOPPED":
            container.exitCode = exit_code  # None: the container never ran
            container.reason = container_reason
            record.stop_code = stop_code
            record.stopped_reason = stopped_reason
            record.desired_status = "STOPPED"
        record.last_status = last_status  # last: a concurrent get sees the exit code no later than STOPPED

    def run_container(
        self,
        task_arn: str,
        template: tasks_pb2.TaskTemplate | None = None,
        outputs: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> str:
        """Do what pyflyte-execute does with the command ECS got: read `--inputs`, run `outputs` on them and
        write the result as `outputs.pb` under `--output-prefix` (nothing when no `outputs`). Returns the
        output prefix."""
        command = self.describe(task_arn)["overrides"]["containerOverrides"][0]["command"]
        inputs_uri = command[command.index("--inputs") + 1]
        output_prefix = str(command[command.index("--output-prefix") + 1])
        if template is not None and outputs is not None:
            inputs = decode_literal_map(
                LiteralMap.FromString(self._read(inputs_uri)), template.interface.inputs.variables
            )
            literal_map = encode_literal_map(outputs(inputs), template.interface.outputs.variables)
            self._write(f"{output_prefix}/outputs.pb", literal_map.SerializeToString())
        return output_prefix

    def write_error(self, output_prefix: str, message: str, code: str = "USER:RuntimeError") -> None:
        """flytekit's error.pb, as pyflyte-execute writes it when the task function raises."""
        error = errors_pb2.ErrorDocument(
            error=errors_pb2.ContainerError(
                code=code, message=message, kind=errors_pb2.ContainerError.NON_RECOVERABLE
            )
        )
        self._write(f"{output_prefix}/error.pb", error.SerializeToString())

    def _read(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _write(self, uri: str, body: bytes) -> None:
        bucket, key = parse_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)


class EcsHarness(Harness, FargateHost):
    """The private Harness and the Fargate host, for tests that look inside the stack
    (tests/functional/test_insider_events.py)."""

    def __init__(self, stack: LocalStack, subnet: str) -> None:
        Harness.__init__(self, stack)
        FargateHost.__init__(self, stack, subnet)

    def ecs_task_arn(self, task_id: str, timeout: float = 30) -> str:
        """The ECS task the agent's create started, once the tasks table records it."""
        deadline = time.monotonic() + timeout
        while "metadata" not in self.item(task_id):
            assert time.monotonic() < deadline, f"task {task_id} started no ECS task"
            time.sleep(0.1)
        return str(json.loads(self.item(task_id)["metadata"]["S"])["task_arn"])


def started_task(client: AgentTestClient, ecs: FargateHost, task_id: str, timeout: float = 30) -> str:
    """The ECS task the agent's create started, once the task records it (it is no longer QUEUED)."""
    deadline = time.monotonic() + timeout
    while Phase(client.api.get_task(task_id).resource.phase) is Phase.QUEUED:
        assert time.monotonic() < deadline, f"task {task_id} started no ECS task"
        time.sleep(0.1)
    (task_arn,) = ecs.ecs.list_tasks(cluster=CLUSTER, startedBy=task_id)["taskArns"]
    return str(task_arn)


def wait_for_message(client: AgentTestClient, task_id: str, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (shown := client.api.get_task(task_id).resource.message) != message:
        assert time.monotonic() < deadline, f"task {task_id}: {shown!r}, not {message!r}"
        time.sleep(0.1)


def execution_status(ecs: FargateHost, task_id: str) -> str:
    """How the task's Step Functions execution ended."""
    return str(Harness(ecs.stack).wait_execution("ecs", task_id)["status"])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentTestClient, FargateHost]]:
    with ecs_deployment(tmp_path_factory.mktemp("manifest")) as both:
        yield both


@pytest.fixture
def client(deployment: tuple[AgentTestClient, FargateHost]) -> AgentTestClient:
    return deployment[0]


@pytest.fixture
def ecs(deployment: tuple[AgentTestClient, FargateHost]) -> FargateHost:
    return deployment[1]


@contextlib.contextmanager
def running_ecs(folder: Path, poll_seconds: int = 1) -> Iterator[EcsHarness]:
    """`ecs_deployment`, as tests/functional/test_insider_events.py reads it."""
    with ecs_deployment(folder, poll_seconds) as (client, host):
        yield EcsHarness(client.stack, host.subnet)


@contextlib.contextmanager
def ecs_deployment(folder: Path, poll_seconds: int = 1) -> Iterator[tuple[AgentTestClient, FargateHost]]:
    """The stack with the ecs agent polling every `poll_seconds`, a VPC, a cluster and a metadata bucket."""
    from moto.moto_api import state_manager

    manifest = folder / "agents.toml"
    manifest.write_text(_manifest([], [], poll_seconds))
    with AgentTestClient(manifest) as client:
        stack = client.stack
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": sys.maxsize})
        try:
            ec2 = stack.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            # As in most Fargate VPCs; moto's awsvpc RunTask also reads the ENI's private DNS name.
            ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
            group = ec2.create_security_group(GroupName="flyte-tasks", Description="tasks", VpcId=vpc)
            stack.client("ecs").create_cluster(clusterName=CLUSTER)
            stack.client("s3").create_bucket(Bucket=METADATA_BUCKET)
            # The subnet ids exist only now; the functions read the manifest at their first invocation.
            manifest.write_text(_manifest([subnet], [group["GroupId"]], poll_seconds))
            yield client, FargateHost(stack, subnet)
        finally:
            state_manager.unset_transition("ecs::task")


# --- the tests ---


def test_container_task_runs_through_its_states_to_success_with_outputs(
    client: AgentTestClient, ecs: FargateHost
) -> None:
    request = ecs.ecs_request(add, a=2, b=3)
    task_id = client.start(request)
    arn = started_task(client, ecs, task_id)

    ecs.report(arn, "PENDING")
    client.wait(task_id, until=Phase.INITIALIZING)
    ecs.report(arn, "RUNNING")
    wait_for_message(client, task_id, "ECS task RUNNING")
    ecs.run_container(arn, request.template, lambda inputs: {"o0": inputs["a"] + inputs["b"]})
    ecs.report(arn, "STOPPED", exit_code=0, stop_code="EssentialContainerExited")
    resource = client.wait(task_id)

    assert resource.phase is Phase.SUCCEEDED, resource.message
    outputs = decode_literal_map(resource.literals, request.template.interface.outputs.variables)
    assert outputs == {"o0": 5}
    links = {link.name: link.uri for link in resource.log_links}
    ecs_task_id = arn.rsplit("/", 1)[-1]
    assert ecs_task_id in links["ECS task"]
    assert links["Container logs (CloudWatch)"].endswith(f"log-events/flyte$252Ftask$252F{ecs_task_id}")
    assert "$252Fflyte$252Fecs-tasks" in links["Container logs (CloudWatch)"]

    described = ecs.describe(arn)
    assert described["launchType"] == "FARGATE"
    assert described["startedBy"] == task_id
    (override,) = described["overrides"]["containerOverrides"]
    prefix = request.output_prefix
    command = override["command"]
    assert command[:2] == ["pyflyte-execute", "--inputs"]
    assert command[command.index("--inputs") + 1] == f"{prefix}/inputs.pb"
    assert command[command.index("--output-prefix") + 1] == prefix
    assert command[command.index("--raw-output-data-prefix") + 1] == f"{prefix}/raw_output"
    assert command[command.index("--prev-checkpoint") + 1] == '""'
    assert not [arg for arg in command if "{{" in arg]
    env = {pair["name"]: pair["value"] for pair in override["environment"]}
    assert env["GREETING"] == "hi"
    assert env["FLYTE_FAIL_ON_ERROR"] == "true"
    assert (
        env["FLYTE_INTERNAL_EXECUTION_ID"]
        == request.task_execution_metadata.task_execution_id.node_execution_id.execution_id.name
    )
    subnet_ids = [
        d["value"] for a in described["attachments"] for d in a["details"] if d["name"] == "subnetId"
    ]
    assert subnet_ids == [ecs.subnet]

    definition = ecs.ecs.describe_task_definition(taskDefinition=described["taskDefinitionArn"])[
        "taskDefinition"
    ]
    assert (definition["cpu"], definition["memory"]) == ("512", "3072")  # 500m / 3Gi, as Fargate sizes them
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["executionRoleArn"] == EXECUTION_ROLE
    (container,) = definition["containerDefinitions"]
    assert container["image"] == request.template.container.image
    assert container["logConfiguration"]["options"]["awslogs-group"] == LOG_GROUP


def test_tasks_of_one_shape_share_a_task_definition_and_a_repeated_create_runs_one_task(
    client: AgentTestClient, ecs: FargateHost
) -> None:
    first = ecs.ecs_request(add, a=1, b=1)
    second = ecs.ecs_request(add, a=5, b=8)

    first_id = client.start(first)
    assert client.start(first) == first_id  # propeller retrying CreateTask
    second_id = client.start(second)
    arns = [started_task(client, ecs, first_id), started_task(client, ecs, second_id)]

    assert ecs.ecs.list_tasks(cluster=CLUSTER, startedBy=first_id)["taskArns"] == [arns[0]]
    definitions = {ecs.describe(arn)["taskDefinitionArn"] for arn in arns}
    assert len(definitions) == 1
    for task_id in (first_id, second_id):
        client.cancel(task_id)
        assert client.wait(task_id).phase is Phase.ABORTED


def test_nonzero_exit_fails_with_the_exit_code_and_reason(client: AgentTestClient, ecs: FargateHost) -> None:
    task_id = client.start(ecs.ecs_request(add, a=1, b=2))
    arn = started_task(client, ecs, task_id)

    ecs.report(
        arn,
        "STOPPED",
        exit_code=137,
        container_reason="OutOfMemoryError: Container killed due to memory usage",
        stop_code="EssentialContainerExited",
        stopped_reason="Essential container in task exited",
    )
    resource = client.wait(task_id)

    assert resource.phase is Phase.FAILED
    assert resource.message.startswith("the container exited with code 137: OutOfMemoryError")
    assert "Essential container in task exited" in resource.message
    assert "more memory" in resource.message
    assert execution_status(ecs, task_id) == "FAILED"


def test_an_error_the_task_raised_is_reported_from_flytekits_error_pb(
    client: AgentTestClient, ecs: FargateHost
) -> None:
    task_id = client.start(ecs.ecs_request(add, a=1, b=-1))
    arn = started_task(client, ecs, task_id)

    prefix = ecs.run_container(arn)
    ecs.write_error(
        prefix,
        "Trace:\n\n    Traceback (most recent call last):\n    ValueError: b must be > 0\n\n"
        "Message:\n\n    ValueError: b must be > 0\n",
    )
    ecs.report(arn, "STOPPED", exit_code=1, stop_code="EssentialContainerExited")
    resource = client.wait(task_id)

    assert resource.phase is Phase.FAILED
    assert resource.message == "ValueError: b must be > 0 (USER:RuntimeError)"


def test_a_task_stopped_by_infrastructure_trouble_may_be_retried(
    client: AgentTestClient, ecs: FargateHost
) -> None:
    task_id = client.start(ecs.ecs_request(add, a=1, b=2))
    arn = started_task(client, ecs, task_id)

    ecs.report(
        arn,
        "STOPPED",
        exit_code=None,
        stop_code="TaskFailedToStart",
        stopped_reason="ResourceInitializationError: unable to pull secrets or registry auth: i/o timeout",
    )
    resource = client.wait(task_id)

    assert resource.phase is Phase.RETRYABLE_FAILED
    assert resource.message.startswith(
        "the ECS task stopped (TaskFailedToStart): ResourceInitializationError"
    )


def test_exit_zero_without_outputs_fails_saying_what_is_missing(
    client: AgentTestClient, ecs: FargateHost
) -> None:
    request = ecs.ecs_request(add, a=1, b=2)
    task_id = client.start(request)
    arn = started_task(client, ecs, task_id)

    ecs.run_container(arn)  # reads nothing, writes nothing
    ecs.report(arn, "STOPPED", exit_code=0, stop_code="EssentialContainerExited")
    resource = client.wait(task_id)

    assert resource.phase is Phase.FAILED
    assert f"wrote no outputs.pb under {request.output_prefix}" in resource.message


@pytest.mark.parametrize(
    ("task_function", "expected"),
    [
        (
            add_on_a_missing_cluster,
            ["ECS cluster 'no-such-cluster' not found", "set `cluster`", "agents.toml"],
        ),
        (add_without_subnets, ["no subnets", "`subnets`", "agents.toml"]),
    ],
)
def test_a_misconfigured_task_fails_saying_what_to_fix(
    client: AgentTestClient, ecs: FargateHost, task_function: Any, expected: list[str]
) -> None:
    tasks_before = len(ecs.ecs.list_tasks(cluster=CLUSTER)["taskArns"])
    task_id = client.start(ecs.ecs_request(task_function, a=1, b=2))

    resource = client.wait(task_id)

    assert resource.phase is Phase.FAILED
    for text in expected:
        assert text in resource.message
    assert execution_status(ecs, task_id) == "FAILED"
    assert len(ecs.ecs.list_tasks(cluster=CLUSTER)["taskArns"]) == tasks_before


def test_delete_mid_run_aborts_and_stops_the_ecs_task(client: AgentTestClient, ecs: FargateHost) -> None:
    task_id = client.start(ecs.ecs_request(add, a=1, b=2))
    arn = started_task(client, ecs, task_id)
    ecs.report(arn, "RUNNING")
    wait_for_message(client, task_id, "ECS task RUNNING")

    client.cancel(task_id)
    resource = client.wait(task_id)

    assert resource.phase is Phase.ABORTED
    assert execution_status(ecs, task_id) == "ABORTED"
    deadline = time.monotonic() + 10
    while ecs.describe(arn)["lastStatus"] != "STOPPED":  # finalize runs the agent's delete
        assert time.monotonic() < deadline, "the ECS task was not stopped"
        time.sleep(0.1)
    described = ecs.describe(arn)
    assert described["desiredStatus"] == "STOPPED"
    assert described["stoppedReason"] == "Aborted by Flyte (DeleteTask)"


# --- the pure parts: sizes and placeholders, as docs/agents/ecs.md lists them ---


def _resources(**values: str) -> tasks_pb2.Resources:
    names = {
        "cpu": tasks_pb2.Resources.CPU,
        "mem": tasks_pb2.Resources.MEMORY,
        "gpu": tasks_pb2.Resources.GPU,
        "ephemeral_storage": tasks_pb2.Resources.EPHEMERAL_STORAGE,
    }
    entries = [
        tasks_pb2.Resources.ResourceEntry(name=names[key], value=value) for key, value in values.items()
    ]
    return tasks_pb2.Resources(requests=entries)


@pytest.mark.parametrize(
    ("requests", "size"),
    [
        ({}, FargateSize(1024, 2048)),
        ({"cpu": "250m", "mem": "512Mi"}, FargateSize(256, 512)),
        ({"cpu": "500m", "mem": "3Gi"}, FargateSize(512, 3072)),
        ({"cpu": "250m", "mem": "8Gi"}, FargateSize(1024, 8192)),
        ({"cpu": "3", "mem": "4Gi"}, FargateSize(4096, 8192)),
        ({"mem": "2G"}, FargateSize(1024, 2048)),
        ({"ephemeral_storage": "50Gi"}, FargateSize(1024, 2048, 50)),
    ],
)
def test_resources_map_to_the_smallest_fargate_size_that_holds_them(
    requests: dict[str, str], size: FargateSize
) -> None:
    assert fargate_size(_resources(**requests)) == size


@pytest.mark.parametrize(
    ("requests", "problem"),
    [
        ({"gpu": "1"}, "Fargate has no GPUs"),
        ({"cpu": "17"}, "exceed Fargate's largest size"),
        ({"mem": "121Gi"}, "exceed Fargate's largest size"),
        ({"cpu": "lots"}, "'lots' is not a quantity"),
    ],
)
def test_resources_fargate_cannot_hold_are_refused(requests: dict[str, str], problem: str) -> None:
    with pytest.raises(AgentError, match=problem):
        fargate_size(_resources(**requests))


def test_placeholders_are_rendered_as_propeller_renders_them() -> None:
    inputs = {"x": 1.5, "n": 3, "s": "hi", "ok": True}
    literals = encode_literal_map(inputs, interface_for({k: type(v) for k, v in inputs.items()}).variables)
    values = placeholder_values("run1-n0-a0-abc", "s3://bucket/out", None)

    rendered = render_args(
        [
            "{{ .Inputs.x }}",
            "{{$inputs.n}}",
            "{{.inputs.s}}-{{.inputs.ok}}",
            "{{.OutputPrefix}}/x",
            "{{.input}}",
            "{{.perRetryUniqueKey}}",
            "{{.unknown}}",
        ],
        values,
        literals,
    )

    assert rendered == [
        "1.5",
        "3",
        "hi-true",
        "s3://bucket/out/x",
        "s3://bucket/out/inputs.pb",
        "run1_n0_a0_abc",
        "{{.unknown}}",
    ]
    with pytest.raises(AgentError, match=r"\{\{.inputs.missing\}\} names no input"):
        render_args(["{{.inputs.missing}}"], values, literals)
