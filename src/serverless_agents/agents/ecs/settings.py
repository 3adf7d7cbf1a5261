"""`EcsSettings`: where and how the agent's tasks run, checked before anything is written or started."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from serverless_agents.exceptions import AgentError


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
