"""Task definitions: one per shape, found again by a family named for the shape's hash, registered once."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from serverless_agents import aws
from serverless_agents.agents.ecs.errors import ecs_errors

if TYPE_CHECKING:
    from serverless_agents.agents.ecs.settings import EcsSettings
    from serverless_agents.agents.ecs.sizing import FargateSize

#: The one container of every task definition this agent registers; RunTask overrides address it by name.
CONTAINER_NAME = "task"
#: awslogs names a stream `<prefix>/<container>/<ECS task id>`.
LOG_STREAM_PREFIX = "flyte"
MANAGED_BY = {"key": "managed-by", "value": "serverless-agents"}


def task_definition_shape(
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


def task_definition_arn(ecs: Any, shape: dict[str, Any]) -> str:
    """The ACTIVE task definition of this shape, registered if there is none yet."""
    from botocore.exceptions import ClientError

    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    image_name = shape["containerDefinitions"][0]["image"].rsplit("/", 1)[-1]
    family = f"flyte-{re.sub(r'[^A-Za-z0-9_-]+', '-', image_name)[:60]}-{digest}"
    with ecs_errors(None):
        try:
            existing = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError as e:
            if aws.error_code(e) not in ("ClientException", "InvalidParameterException"):
                raise
            existing = None  # ECS says "Unable to describe task definition": none of this shape yet
        if existing is not None and existing.get("status") == "ACTIVE":
            return str(existing["taskDefinitionArn"])
        registered = ecs.register_task_definition(family=family, tags=[MANAGED_BY], **shape)
    return str(registered["taskDefinition"]["taskDefinitionArn"])
