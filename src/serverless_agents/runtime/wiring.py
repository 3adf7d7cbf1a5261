"""Builds the runtime objects a handler needs from its settings, once per container (per settings)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from serverless_agents.agent import AgentKind, AsyncAgentBase, BaseSensor, SyncAgentBase
from serverless_agents.exceptions import ManifestError
from serverless_agents.naming import sensor_schedule_group
from serverless_agents.payloads import PayloadStore
from serverless_agents.registry import AgentRegistry
from serverless_agents.runtime.async_steps import AsyncAgentSteps
from serverless_agents.runtime.loading import cached_manifest, load_agent
from serverless_agents.runtime.sensors import SensorSchedules, SensorSteps
from serverless_agents.runtime.service import SensorTargets, TaskService
from serverless_agents.runtime.sync import SyncTarget
from serverless_agents.tasks_table import TasksTable

if TYPE_CHECKING:
    from serverless_agents.settings import RuntimeSettings


def _stores(settings: RuntimeSettings) -> tuple[TasksTable, PayloadStore]:
    return TasksTable(settings.tasks_table, ttl_days=settings.task_ttl_days), PayloadStore(
        settings.payload_bucket
    )


@functools.cache
def task_service(settings: RuntimeSettings) -> TaskService:
    table, payloads = _stores(settings)
    registry = AgentRegistry.from_manifest(cached_manifest(settings.manifest_path))
    targets = (
        SensorTargets(settings.function_arn_prefix, settings.scheduler_role_arn)
        if settings.function_arn_prefix and settings.scheduler_role_arn
        else None
    )
    return TaskService(
        registry,
        table,
        payloads,
        settings.state_machine_arn_prefix,
        settings.deployment,
        settings.region,
        sensor_targets=targets,
    )


def async_state_machine_arns(settings: RuntimeSettings) -> list[str]:
    """The deployment's async agents' state machines, which the sweeper watches."""
    registry = AgentRegistry.from_manifest(cached_manifest(settings.manifest_path))
    return [f"{settings.state_machine_arn_prefix}{a.name}" for a in registry if a.kind is AgentKind.ASYNC]


@functools.cache
def sensor_steps(settings: RuntimeSettings) -> SensorSteps:
    loaded = load_agent(settings.manifest_path, settings.agent)
    instance: Any = loaded.instance
    if not isinstance(instance, BaseSensor):
        raise ManifestError(f"agent {loaded.name!r} is not a sensor")
    table, payloads = _stores(settings)
    schedules = SensorSchedules(sensor_schedule_group(settings.deployment, loaded.name))
    return SensorSteps(instance, loaded.settings, table, payloads, schedules)


@functools.cache
def async_steps(settings: RuntimeSettings) -> AsyncAgentSteps:
    loaded = load_agent(settings.manifest_path, settings.agent)
    instance: Any = loaded.instance
    if not isinstance(instance, AsyncAgentBase):
        raise ManifestError(f"agent {loaded.name!r} is not an async agent")
    table, payloads = _stores(settings)
    return AsyncAgentSteps(instance, loaded.settings.poll, table, payloads)


def sync_agent(settings: RuntimeSettings) -> SyncTarget:
    loaded = load_agent(settings.manifest_path, settings.agent)
    if not isinstance(loaded.instance, SyncAgentBase):
        raise ManifestError(f"agent {loaded.name!r} is not a sync agent")
    return SyncTarget(loaded.name, loaded.instance, float(loaded.settings.timeout))
