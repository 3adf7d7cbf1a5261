"""The task's files under Flyte's `output_prefix`, and what a stopped task ends as.

`create` writes `inputs.pb` (and `task.pb` when asked for) there; the container writes `outputs.pb`, or
flytekit's `error.pb`. Once ECS reports the task STOPPED, `error.pb` decides first, then the exit and stop
codes, then `outputs.pb`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from serverless_agents import aws
from serverless_agents.agent import LogLink, Phase, Resource
from serverless_agents.agents.ecs.errors import INFRA_MARKERS
from serverless_agents.agents.ecs.task_definitions import CONTAINER_NAME
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.exceptions import AgentError, InvalidRequest
from serverless_agents.security.masking import excerpt

if TYPE_CHECKING:
    from serverless_agents.agents.ecs.agent import EcsTaskMetadata

# Stop codes that say "the infrastructure failed", not the task: Flyte may retry those.
_INTERRUPTIONS = frozenset({"SpotInterruption", "TerminationNotice"})
_MESSAGE_LIMIT = 1000


def output_prefix(prefix: str) -> str:
    """Flyte's `output_prefix` without its trailing `/`; anything but an s3:// prefix is refused."""
    prefix = prefix.rstrip("/")
    try:
        parse_s3_uri(prefix, "output_prefix", key_required=False)
    except InvalidRequest as e:
        raise AgentError(f"{e}: the container reads its inputs and writes its outputs there") from None
    return prefix


def put(uri: str, body: bytes) -> None:
    """Write one of the task's files; a refusal names the permission the create function lacks."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_uri(uri)
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

    bucket, key = parse_s3_uri(uri)
    try:
        with aws.transient_errors_as_unavailable("S3"):
            return bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as e:
        if aws.error_code(e) in ("NoSuchKey", "404"):
            return None
        raise


def stopped(
    metadata: EcsTaskMetadata, ecs_task: Mapping[str, Any], links: list[LogLink], info: dict[str, Any]
) -> Resource:
    """The Resource of a task ECS reports STOPPED: its error.pb, its exit and stop codes, its outputs.pb."""
    containers = ecs_task.get("containers", [])
    container: Mapping[str, Any] = next((c for c in containers if c.get("name") == CONTAINER_NAME), {})
    exit_code = container.get("exitCode")
    stop_code = str(ecs_task.get("stopCode", ""))
    info.update({"exit_code": exit_code, "stop_code": stop_code})

    def result(phase: Phase, message: str) -> Resource:
        return Resource(phase, excerpt(message, _MESSAGE_LIMIT), links, custom_info=info)

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
    if stop_code in _INTERRUPTIONS or any(marker in joined for marker in INFRA_MARKERS):
        return Phase.RETRYABLE_FAILED, message
    return Phase.FAILED, message
