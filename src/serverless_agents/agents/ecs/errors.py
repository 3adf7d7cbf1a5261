"""ECS's refusals as one line naming what to fix; throttling and ECS's own failures as retryable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from serverless_agents import aws
from serverless_agents.exceptions import AgentError, RetryableAgentError

if TYPE_CHECKING:
    from serverless_agents.agents.ecs.settings import EcsSettings

#: Words in a RunTask failure or a stop reason that say "the infrastructure failed", not the task: Flyte may
#: retry those.
INFRA_MARKERS = (
    "ResourceInitializationError",
    "Capacity is unavailable",
    "Timeout waiting for network interface",
    "InternalError",
)


@contextmanager
def ecs_errors(settings: EcsSettings | None) -> Iterator[None]:
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
