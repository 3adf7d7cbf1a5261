"""ECS Fargate container tasks: a task template's `container` run with ECS `RunTask`, where propeller
would start a pod.

A task of type `ecs_fargate` carries an ordinary Flyte container (image, args, env, resources); for a Python
function flytekit writes `pyflyte-execute --inputs {{.input}} --output-prefix {{.outputPrefix}} ...`.

- **Task definition.** One per shape (image, Fargate size, roles, log group, CPU architecture, storage): its
  family ends in a hash of that shape, so the next task of the same shape reuses it rather than registering a
  revision per run. What changes per run (command, environment) travels as RunTask `overrides`.
- **Inputs and outputs.** No propeller stages files here, so `create` does what flytekit's own connector
  executor does (`flytekit.extend.backend.utils.render_task_template`): it writes the inputs `LiteralMap` as
  `<output_prefix>/inputs.pb` and substitutes the container's placeholders (see `placeholder_values`). The
  container writes `outputs.pb`, or flytekit's `error.pb`, under `output_prefix`; `get` reads them back.
- **Idempotency.** RunTask gets `clientToken` = sha256(task id) and `startedBy` = the task id: a create
  retried after RunTask went through gets the same ECS task back instead of starting a second one.
- **Phases.** `lastStatus` PROVISIONING, PENDING, ACTIVATING -> INITIALIZING; RUNNING up to DEPROVISIONING ->
  RUNNING; STOPPED -> `error.pb`, then the exit code and stop code, then `outputs.pb` decide.

Settings (cluster, subnets, roles, ...) come from the manifest's `config` table; the template's `custom` may
override each of them (`EcsSettings`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError

from serverless_agents import aws
from serverless_agents.agent import AsyncAgentBase, LogLink, Phase, Resource, ResourceMetadata, TaskContext
from serverless_agents.exceptions import AgentError, RetryableAgentError

if TYPE_CHECKING:
    from flyteidl.core.literals_pb2 import Literal, LiteralMap
    from flyteidl.core.tasks_pb2 import Resources

__all__ = [
    "EcsFargateAgent",
    "EcsSettings",
    "EcsTaskMetadata",
    "FargateSize",
    "fargate_size",
    "placeholder_values",
    "render_args",
]

TASK_TYPE = "ecs_fargate"
#: The one container of every task definition this agent registers; RunTask overrides address it by name.
CONTAINER_NAME = "task"
#: awslogs names a stream `<prefix>/<container>/<ECS task id>`.
LOG_STREAM_PREFIX = "flyte"
_MANAGED_BY = {"key": "managed-by", "value": "serverless-agents"}

_STARTING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
_ENDED = frozenset({"STOPPED", "DELETED"})
# Stop codes and reasons that say "the infrastructure failed", not the task: Flyte may retry those.
_INTERRUPTIONS = frozenset({"SpotInterruption", "TerminationNotice"})
_INFRA_MARKERS = (
    "ResourceInitializationError",
    "Capacity is unavailable",
    "Timeout waiting for network interface",
    "InternalError",
)
_MESSAGE_LIMIT = 1000


class EcsSettings(BaseModel):
    """Where and how tasks run: the manifest's `config` table, with the template's `custom` over it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = "default"
    subnets: list[str] = []
    security_groups: list[str] = []
    assign_public_ip: bool = False
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    log_group: str | None = None
    capacity_provider: typing.Literal["FARGATE", "FARGATE_SPOT"] | None = None
    raw_output_prefix: str | None = None

    @classmethod
    def resolve(cls, config: Mapping[str, Any], custom: Mapping[str, Any]) -> EcsSettings:
        try:
            settings = cls.model_validate({**config, **custom})
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                for error in e.errors()
            )
            raise AgentError(
                f"ecs_fargate settings (agents.toml config or the task's custom): {problems}"
            ) from None
        if not settings.subnets:
            raise AgentError(
                "no subnets: Fargate tasks need `subnets` (a list of subnet ids) in the agent's config in "
                "agents.toml, or in the task's custom"
            )
        if settings.log_group and not settings.execution_role_arn:
            raise AgentError(
                f"log_group {settings.log_group!r} needs `execution_role_arn`: the awslogs driver writes "
                "with the task execution role"
            )
        return settings


class EcsTaskMetadata(ResourceMetadata):
    cluster: str
    task_arn: str
    region: str
    output_prefix: str
    #: Whether the task interface declares outputs, so a missing outputs.pb is a failure.
    expects_outputs: bool
    log_group: str | None = None


@dataclass(frozen=True)
class FargateSize:
    #: CPU units (1024 = 1 vCPU) and MiB: one of the pairs Fargate accepts.
    cpu: int
    memory: int
    #: GiB, when more than Fargate's default 20 GiB is asked for.
    ephemeral_storage: int | None = None


class EcsFargateAgent(AsyncAgentBase[EcsTaskMetadata]):
    task_type = TASK_TYPE
    metadata_type = EcsTaskMetadata

    def create(self, task: TaskContext) -> EcsTaskMetadata:
        settings = EcsSettings.resolve(self.config, task.custom)
        template = task.template
        if not template.HasField("container") or not template.container.image:
            raise AgentError(
                "the task template has no container image: an ecs_fargate task runs template.container "
                "(see docs/agents/ecs.md for the flytekit task class)"
            )
        prefix = _output_prefix(task.output_prefix)
        image, resources = _image_and_resources(task)
        size = fargate_size(resources)
        ecs = aws.client("ecs")
        region = str(ecs.meta.region_name)

        values = placeholder_values(task.task_id, prefix, settings.raw_output_prefix)
        args = [*template.container.command, *template.container.args]
        command = render_args(args, values, task.literals)
        _put(f"{prefix}/inputs.pb", task.literals.SerializeToString())
        if any(_TASK_TEMPLATE_PATH.search(arg) for arg in args):
            _put(values["tasktemplatepath"], template.SerializeToString())

        definition = _task_definition_arn(
            ecs, _task_definition_shape(image, size, settings, region, template.container.architecture)
        )
        arn = _run_task(ecs, task, settings, definition, command, _environment(task))
        return EcsTaskMetadata(
            cluster=settings.cluster,
            task_arn=arn,
            region=region,
            output_prefix=prefix,
            expects_outputs=bool(template.interface.outputs.variables),
            log_group=settings.log_group,
        )

    def get(self, metadata: EcsTaskMetadata) -> Resource:
        with aws.transient_errors_as_unavailable("ECS"):
            described = aws.client("ecs").describe_tasks(cluster=metadata.cluster, tasks=[metadata.task_arn])
        links = _log_links(metadata)
        if not described.get("tasks"):
            return Resource(
                Phase.RETRYABLE_FAILED,
                f"ECS has no record of task {metadata.task_arn} in cluster {metadata.cluster!r} "
                "(it forgets stopped tasks after about an hour)",
                links,
            )
        ecs_task = described["tasks"][0]
        status = str(ecs_task.get("lastStatus", ""))
        info: dict[str, Any] = {
            "cluster": metadata.cluster,
            "task_arn": metadata.task_arn,
            "last_status": status,
        }
        if status not in _ENDED:
            phase = Phase.INITIALIZING if status in _STARTING else Phase.RUNNING
            return Resource(phase, f"ECS task {status}", links, custom_info=info)
        return _stopped(metadata, ecs_task, links, info)

    def delete(self, metadata: EcsTaskMetadata) -> None:
        from botocore.exceptions import ClientError

        try:
            with aws.transient_errors_as_unavailable("ECS"):
                aws.client("ecs").stop_task(
                    cluster=metadata.cluster, task=metadata.task_arn, reason="Aborted by Flyte (DeleteTask)"
                )
        except ClientError as e:
            # The task or its cluster is gone already: nothing is left running.
            if aws.error_code(e) not in ("InvalidParameterException", "ClusterNotFoundException"):
                raise


# --- the container's command -------------------------------------------------------------------------------

# Propeller's template syntax (flyteplugins `pluginmachinery/utils/template`): case-insensitive, `.` or `$`.
_PLACEHOLDER = re.compile(r"\{\{\s*[.$](\w+)(?:\.([^}\s]+))?\s*\}\}")
_TASK_TEMPLATE_PATH = re.compile(r"(?i)\{\{\s*[.$]TaskTemplatePath\s*\}\}")


def placeholder_values(task_id: str, output_prefix: str, raw_output_prefix: str | None) -> dict[str, str]:
    """Values for propeller's placeholders, keyed by lower-case name, laid out as flytekit's connector
    executor lays them out: everything under `output_prefix`, inputs as `inputs.pb` beside `outputs.pb`."""
    unique = re.sub(r"[^a-zA-Z0-9_]+", "_", re.sub(r"^[^a-zA-Z_]+", "a", task_id))
    raw = f"{raw_output_prefix.rstrip('/')}/{task_id}" if raw_output_prefix else f"{output_prefix}/raw_output"
    return {
        "input": f"{output_prefix}/inputs.pb",
        "inputprefix": output_prefix,
        "outputprefix": output_prefix,
        "rawoutputdataprefix": raw,
        "checkpointoutputprefix": f"{output_prefix}/checkpoint_output",
        # Each attempt is a new task with its own output_prefix; the previous attempt's is not known here, so
        # every attempt starts without a checkpoint, as propeller's first attempt does.
        "prevcheckpointprefix": '""',
        "perretryuniquekey": unique,
        "tasktemplatepath": f"{output_prefix}/task.pb",
    }


def render_args(args: Sequence[str], values: Mapping[str, str], literals: LiteralMap) -> list[str]:
    """Substitute `{{.input}}`, `{{.outputPrefix}}`, ... and `{{.inputs.<name>}}`; unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        name, sub = match.group(1).lower(), match.group(2)
        if name == "inputs" and sub is not None:
            if sub not in literals.literals:
                raise AgentError(f"container args: {match.group(0)} names no input of the task")
            return _literal_text(literals.literals[sub], match.group(0))
        return values.get(name, match.group(0)) if sub is None else match.group(0)

    return [_PLACEHOLDER.sub(replace, arg) for arg in args]


def _literal_text(literal: Literal, placeholder: str) -> str:
    """An input as propeller writes it into args: primitives as text, blobs by URI, lists as `[a,b]`."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return "[" + ",".join(_literal_text(item, placeholder) for item in literal.collection.literals) + "]"
    scalar = literal.scalar
    scalar_kind = scalar.WhichOneof("value") if kind == "scalar" else None
    if scalar_kind == "primitive":
        primitive = scalar.primitive
        value_kind = primitive.WhichOneof("value")
        if value_kind == "boolean":
            return "true" if primitive.boolean else "false"
        if value_kind == "float_value":
            text = repr(primitive.float_value)
            return text.removesuffix(".0")
        if value_kind in ("datetime", "duration"):
            return str(getattr(primitive, value_kind).ToJsonString())
        if value_kind in ("integer", "string_value"):
            return str(getattr(primitive, value_kind))
    if scalar_kind == "blob":
        return str(scalar.blob.uri)
    if scalar_kind == "structured_dataset":
        return str(scalar.structured_dataset.uri)
    raise AgentError(
        f"container args: {placeholder} is a {scalar_kind or kind} input, which has no text form"
    )


def _environment(task: TaskContext) -> list[dict[str, str]]:
    """What pyflyte-execute reads from its pod's environment, then Flyte's and the container's own."""
    env: dict[str, str] = {}
    metadata = task.execution_metadata
    if metadata is not None:
        ident = metadata.task_execution_id
        workflow = ident.node_execution_id.execution_id
        env = {
            "FLYTE_INTERNAL_EXECUTION_PROJECT": workflow.project,
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": workflow.domain,
            "FLYTE_INTERNAL_EXECUTION_ID": workflow.name,
            "FLYTE_INTERNAL_TASK_PROJECT": ident.task_id.project,
            "FLYTE_INTERNAL_TASK_DOMAIN": ident.task_id.domain,
            "FLYTE_INTERNAL_TASK_NAME": ident.task_id.name,
            "FLYTE_INTERNAL_TASK_VERSION": ident.task_id.version,
            "FLYTE_ATTEMPT_NUMBER": str(ident.retry_attempt),
        }
        env.update(metadata.environment_variables)
    env.update({pair.key: pair.value for pair in task.template.container.env})
    # pyflyte-execute exits 0 after writing error.pb unless told otherwise: let the exit code tell the truth.
    env["FLYTE_FAIL_ON_ERROR"] = "true"
    return [{"name": name, "value": value} for name, value in env.items() if value]


# --- Fargate sizes -----------------------------------------------------------------------------------------

# (CPU units, the memory sizes in MiB Fargate allows with it), smallest first.
_FARGATE_SIZES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (256, (512, 1024, 2048)),
    (512, tuple(range(1024, 4097, 1024))),
    (1024, tuple(range(2048, 8193, 1024))),
    (2048, tuple(range(4096, 16385, 1024))),
    (4096, tuple(range(8192, 30721, 1024))),
    (8192, tuple(range(16384, 61441, 4096))),
    (16384, tuple(range(32768, 122881, 8192))),
)
_DEFAULT_CPU = "1"
_DEFAULT_MEMORY = "2Gi"
_DEFAULT_STORAGE_GIB = 20
_MAX_STORAGE_GIB = 200
# Kubernetes quantity suffixes, as Flyte's resource strings use them ("500m", "2Gi", "1G").
_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}
_QUANTITY = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)")


def fargate_size(resources: Resources) -> FargateSize:
    """The smallest Fargate size that holds the container's resources (limits where set, else requests).

    Without a CPU or memory request the task gets 1 vCPU or 2 GiB. GPUs are refused: Fargate has none.
    """
    from flyteidl.core.tasks_pb2 import Resources as R

    wanted = {entry.name: entry.value for entry in resources.requests if entry.value}
    wanted.update({entry.name: entry.value for entry in resources.limits if entry.value})
    if R.GPU in wanted and _quantity(wanted[R.GPU], "gpu") > 0:
        raise AgentError(
            "resources: Fargate has no GPUs; run GPU tasks elsewhere (e.g. an EC2-backed cluster)"
        )
    cpu_text, memory_text = wanted.get(R.CPU, _DEFAULT_CPU), wanted.get(R.MEMORY, _DEFAULT_MEMORY)
    cpu = math.ceil(_quantity(cpu_text, "cpu") * 1024)
    memory = math.ceil(_quantity(memory_text, "memory") / 2**20)
    storage = None
    if R.EPHEMERAL_STORAGE in wanted:
        gib = math.ceil(_quantity(wanted[R.EPHEMERAL_STORAGE], "ephemeral_storage") / 2**30)
        if gib > _MAX_STORAGE_GIB:
            raise AgentError(
                f"resources: ephemeral_storage {wanted[R.EPHEMERAL_STORAGE]} is over Fargate's 200 GiB"
            )
        storage = gib if gib > _DEFAULT_STORAGE_GIB else None
    for size_cpu, memories in _FARGATE_SIZES:
        if size_cpu >= cpu:
            fitting = next((size for size in memories if size >= memory), None)
            if fitting is not None:
                return FargateSize(size_cpu, fitting, storage)
    raise AgentError(
        f"resources: cpu {cpu_text} and memory {memory_text} exceed Fargate's largest size (16 vCPU, 120 GiB)"
    )


def _quantity(text: str, name: str) -> float:
    match = _QUANTITY.fullmatch(text.strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise AgentError(f"resources: {name} {text!r} is not a quantity such as 500m, 2, 512Mi or 4Gi")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def _image_and_resources(task: TaskContext) -> tuple[str, Resources]:
    """The template's, unless the workflow overrides them for this node (`with_overrides`)."""
    container = task.template.container
    image, resources = container.image, container.resources
    metadata = task.execution_metadata
    if metadata is not None and metadata.HasField("overrides"):
        overrides = metadata.overrides
        if overrides.container_image:
            image = overrides.container_image
        if overrides.HasField("resources") and (overrides.resources.requests or overrides.resources.limits):
            resources = overrides.resources
    return image, resources


# --- ECS calls ---------------------------------------------------------------------------------------------


def _task_definition_shape(
    image: str, size: FargateSize, settings: EcsSettings, region: str, architecture: int
) -> dict[str, Any]:
    """RegisterTaskDefinition's arguments but `family`: all that must match to reuse a definition."""
    from flyteidl.core.tasks_pb2 import Container

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        # The task's own memory as the container's hard limit changes nothing on Fargate (moto needs it set).
        "memory": size.memory,
    }
    if settings.log_group:
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": settings.log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        }
    shape: dict[str, Any] = {
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": str(size.cpu),
        "memory": str(size.memory),
        "runtimePlatform": {
            "cpuArchitecture": "ARM64" if architecture == Container.ARM64 else "X86_64",
            "operatingSystemFamily": "LINUX",
        },
        "containerDefinitions": [container],
    }
    if settings.execution_role_arn:
        shape["executionRoleArn"] = settings.execution_role_arn
    if settings.task_role_arn:
        shape["taskRoleArn"] = settings.task_role_arn
    if size.ephemeral_storage:
        shape["ephemeralStorage"] = {"sizeInGiB": size.ephemeral_storage}
    return shape


def _task_definition_arn(ecs: Any, shape: dict[str, Any]) -> str:
    from botocore.exceptions import ClientError

    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    image_name = shape["containerDefinitions"][0]["image"].rsplit("/", 1)[-1]
    family = f"flyte-{re.sub(r'[^A-Za-z0-9_-]+', '-', image_name)[:60]}-{digest}"
    with _ecs_errors(None):
        try:
            existing = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError as e:
            if aws.error_code(e) not in ("ClientException", "InvalidParameterException"):
                raise
            existing = None  # ECS says "Unable to describe task definition": none of this shape yet
        if existing is not None and existing.get("status") == "ACTIVE":
            return str(existing["taskDefinitionArn"])
        registered = ecs.register_task_definition(family=family, tags=[_MANAGED_BY], **shape)
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def _run_task(
    ecs: Any,
    task: TaskContext,
    settings: EcsSettings,
    definition: str,
    command: list[str],
    environment: list[dict[str, str]],
) -> str:
    network: dict[str, Any] = {
        "subnets": settings.subnets,
        "assignPublicIp": "ENABLED" if settings.assign_public_ip else "DISABLED",
    }
    if settings.security_groups:
        network["securityGroups"] = settings.security_groups
    request: dict[str, Any] = {
        "cluster": settings.cluster,
        "taskDefinition": definition,
        "count": 1,
        "networkConfiguration": {"awsvpcConfiguration": network},
        "overrides": {
            "containerOverrides": [{"name": CONTAINER_NAME, "command": command, "environment": environment}]
        },
        "startedBy": task.task_id,
        "clientToken": hashlib.sha256(task.task_id.encode()).hexdigest(),
        "tags": [_MANAGED_BY, {"key": "flyte-task-id", "value": task.task_id}],
    }
    if settings.capacity_provider:
        request["capacityProviderStrategy"] = [{"capacityProvider": settings.capacity_provider, "weight": 1}]
    else:
        request["launchType"] = "FARGATE"
    with _ecs_errors(settings):
        response = ecs.run_task(**request)
    if response.get("tasks"):
        return str(response["tasks"][0]["taskArn"])
    reasons = "; ".join(
        f"{failure.get('reason', '?')}{': ' + failure['detail'] if failure.get('detail') else ''}"
        for failure in response.get("failures", [])
    )
    if any(marker in reasons for marker in _INFRA_MARKERS):
        raise RetryableAgentError(f"ECS could not start the task: {reasons}")
    raise AgentError(
        f"ECS could not start the task in cluster {settings.cluster!r}: {reasons or 'no reason given'}"
    )


@contextmanager
def _ecs_errors(settings: EcsSettings | None) -> Iterator[None]:
    """ECS's refusals as one line naming what to fix; throttling and ECS's own failures are retried."""
    from botocore.exceptions import ClientError

    try:
        with aws.transient_errors_as_unavailable("ECS"):
            yield
    except ClientError as e:
        raise _refusal(e, settings) from None


def _refusal(error: Exception, settings: EcsSettings | None) -> Exception:
    code = aws.error_code(error)
    response = getattr(error, "response", {})
    text = str(response.get("Error", {}).get("Message", error))
    if code == "ServerException":  # ECS's own 5xx: nothing was wrong with the request
        return RetryableAgentError(f"ECS failed on its side: {text}")
    if code == "ClusterNotFoundException" and settings is not None:
        return AgentError(
            f"ECS cluster {settings.cluster!r} not found: create it, or set `cluster` to an existing cluster "
            "in the agent's config in agents.toml (or in the task's custom)"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return AgentError(
            f"ECS refused the call ({text}): the agent's functions need ecs:RegisterTaskDefinition, "
            "ecs:DescribeTaskDefinition, ecs:RunTask, ecs:TagResource and iam:PassRole on the task's roles"
        )
    where = (
        f"cluster {settings.cluster!r}, subnets {settings.subnets}, security groups "
        f"{settings.security_groups or 'the VPC default'}"
        if settings is not None
        else "the task definition: image, execution_role_arn, task_role_arn, log_group"
    )
    return AgentError(f"ECS refused the task: {code}: {text} (check {where})")


# --- S3 and the end of a task ------------------------------------------------------------------------------


def _output_prefix(output_prefix: str) -> str:
    if not output_prefix.startswith("s3://") or len(output_prefix.rstrip("/")) <= len("s3://"):
        raise AgentError(
            f"output_prefix {output_prefix!r} is not an s3:// prefix: the container reads its inputs and "
            "writes its outputs there"
        )
    return output_prefix.rstrip("/")


def _bucket_and_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _put(uri: str, body: bytes) -> None:
    from botocore.exceptions import ClientError

    bucket, key = _bucket_and_key(uri)
    try:
        with aws.transient_errors_as_unavailable("S3"):
            aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    except ClientError as e:
        raise AgentError(
            f"cannot write {uri}: {aws.error_code(e)} (the create function needs s3:PutObject under "
            "Flyte's output_prefix)"
        ) from None


def _get_optional(uri: str) -> bytes | None:
    from botocore.exceptions import ClientError

    bucket, key = _bucket_and_key(uri)
    try:
        with aws.transient_errors_as_unavailable("S3"):
            return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as e:
        if aws.error_code(e) in ("NoSuchKey", "404"):
            return None
        raise


def _stopped(
    metadata: EcsTaskMetadata, ecs_task: Mapping[str, Any], links: list[LogLink], info: dict[str, Any]
) -> Resource:
    containers = ecs_task.get("containers", [])
    container: Mapping[str, Any] = next((c for c in containers if c.get("name") == CONTAINER_NAME), {})
    exit_code = container.get("exitCode")
    stop_code = str(ecs_task.get("stopCode", ""))
    info.update({"exit_code": exit_code, "stop_code": stop_code})

    def result(phase: Phase, message: str) -> Resource:
        return Resource(phase, message[:_MESSAGE_LIMIT], links, custom_info=info)

    error = _get_optional(f"{metadata.output_prefix}/error.pb")
    if error is not None:
        phase, message = _container_error(error)
        return result(phase, message)
    if exit_code != 0 or stop_code not in ("", "EssentialContainerExited"):
        return result(*_failure(ecs_task, container))
    if not metadata.expects_outputs:
        return result(Phase.SUCCEEDED, "the container exited with code 0")
    data = _get_optional(f"{metadata.output_prefix}/outputs.pb")
    if data is None:
        return result(
            Phase.FAILED,
            f"the container exited with code 0 but wrote no outputs.pb under {metadata.output_prefix}: the "
            "task declares outputs, so its command must write them there (pyflyte-execute --output-prefix "
            "{{.outputPrefix}} does)",
        )
    from flyteidl.core.literals_pb2 import LiteralMap

    outputs = LiteralMap.FromString(data)
    return Resource(
        Phase.SUCCEEDED, "the container exited with code 0", links, outputs=outputs, custom_info=info
    )


def _container_error(data: bytes) -> tuple[Phase, str]:
    """flytekit's error.pb: its last message line (the exception); retryable if flytekit says recoverable."""
    from flyteidl.core.errors_pb2 import ContainerError, ErrorDocument

    error = ErrorDocument.FromString(data).error
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    phase = Phase.RETRYABLE_FAILED if error.kind == ContainerError.RECOVERABLE else Phase.FAILED
    return phase, f"{last} ({error.code})" if error.code else last


def _failure(ecs_task: Mapping[str, Any], container: Mapping[str, Any]) -> tuple[Phase, str]:
    stop_code = str(ecs_task.get("stopCode", ""))
    reasons = [str(text) for text in (container.get("reason"), ecs_task.get("stoppedReason")) if text]
    exit_code = container.get("exitCode")
    what = (
        f"the container exited with code {exit_code}"
        if exit_code is not None
        else f"the ECS task stopped{f' ({stop_code})' if stop_code else ''}"
    )
    message = f"{what}: {'; '.join(reasons)}" if reasons else what
    joined = " ".join(reasons)
    if "OutOfMemoryError" in joined:
        message += " (ask for more memory in the task's resources)"
    elif "CannotPullContainerError" in joined:
        message += (
            " (check the image name, that execution_role_arn may pull it, and that the subnets reach the "
            "registry: a NAT gateway, VPC endpoints, or assign_public_ip = true)"
        )
    if stop_code in _INTERRUPTIONS or any(marker in joined for marker in _INFRA_MARKERS):
        return Phase.RETRYABLE_FAILED, message
    return Phase.FAILED, message


def _log_links(metadata: EcsTaskMetadata) -> list[LogLink]:
    region = metadata.region
    cluster_name = metadata.cluster.rsplit("/", 1)[-1]
    ecs_task_id = metadata.task_arn.rsplit("/", 1)[-1]
    links = [
        LogLink(
            "ECS task",
            f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster_name}/tasks/{ecs_task_id}"
            f"/configuration?region={region}",
        )
    ]
    if metadata.log_group:
        # The CloudWatch console encodes names twice and then writes '%' as '$'.
        def encode(name: str) -> str:
            return quote(quote(name, safe=""), safe="").replace("%", "$")

        stream = f"{LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{ecs_task_id}"
        links.append(
            LogLink(
                "Container logs (CloudWatch)",
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups"
                f"/log-group/{encode(metadata.log_group)}/log-events/{encode(stream)}",
            )
        )
    return links
