"""RunTask: one Fargate task of a task definition, with this run's command and environment as overrides."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from serverless_agents.agents.ecs.errors import INFRA_MARKERS, ecs_errors
from serverless_agents.agents.ecs.task_definitions import CONTAINER_NAME, MANAGED_BY
from serverless_agents.exceptions import AgentError, RetryableAgentError

if TYPE_CHECKING:
    from serverless_agents.agent import TaskContext
    from serverless_agents.agents.ecs.settings import EcsSettings


def run_task(
    ecs: Any,
    task: TaskContext,
    settings: EcsSettings,
    definition: str,
    command: list[str],
    environment: list[dict[str, str]],
) -> str:
    """The started ECS task's ARN; the same one again when a retried create repeats the call."""
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
        "tags": [MANAGED_BY, {"key": "flyte-task-id", "value": task.task_id}],
    }
    if settings.capacity_provider:
        request["capacityProviderStrategy"] = [{"capacityProvider": settings.capacity_provider, "weight": 1}]
    else:
        request["launchType"] = "FARGATE"
    with ecs_errors(settings):
        response = ecs.run_task(**request)
    if response.get("tasks"):
        return str(response["tasks"][0]["taskArn"])
    reasons = "; ".join(
        f"{failure.get('reason', '?')}{': ' + failure['detail'] if failure.get('detail') else ''}"
        for failure in response.get("failures", [])
    )
    if any(marker in reasons for marker in INFRA_MARKERS):
        raise RetryableAgentError(f"ECS could not start the task: {reasons}")
    raise AgentError(
        f"ECS could not start the task in cluster {settings.cluster!r}: {reasons or 'no reason given'}"
    )
