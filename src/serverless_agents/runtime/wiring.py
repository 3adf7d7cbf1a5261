"""The composition root: builds the runtime objects a handler needs from its settings, once per container
(per settings), and is the one place that makes their AWS clients.

Every runtime object takes its clients as typed constructor parameters and never makes one, so the same
code runs on AWS, on moto (the local stack, the tests) and against any client a test hands in.
`clients()` makes them with `aws.client`: each is made at its first use, so a function that never calls a
service never loads its model (cold start), and after a SnapStart restore the next use makes a new one.
Likewise each factory imports the runtime modules it builds from: a function's first invocation loads
its own runtime (the create function, `async_steps`), not every function's (sensors, the api's service,
the sweeper).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from serverless_agents import aws
from serverless_agents.exceptions import ManifestError
from serverless_agents.runtime.loading import LoadedAgent, cached_manifest, deployed_registry, load_agent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_stepfunctions import SFNClient

    from serverless_agents.aws.payloads import PayloadStore
    from serverless_agents.aws.tasks_table import TasksTable
    from serverless_agents.runtime.async_steps import AsyncAgentSteps
    from serverless_agents.runtime.finalize import Finalizer
    from serverless_agents.runtime.sensors import SensorSteps
    from serverless_agents.runtime.service import TaskService
    from serverless_agents.runtime.settings import RuntimeSettings
    from serverless_agents.runtime.sweeper import Sweeper
    from serverless_agents.runtime.sync import SyncTarget
    from serverless_agents.runtime.task_logs import LogsClient

#: The kind of agent a handler serves (a sensor, an async agent, a sync agent).
AgentT = TypeVar("AgentT")


@dataclass(frozen=True)
class Clients:
    """The AWS clients the runtime uses, one per service."""

    dynamodb: DynamoDBClient
    s3: S3Client
    stepfunctions: SFNClient
    lambda_: LambdaClient
    scheduler: EventBridgeSchedulerClient
    secretsmanager: SecretsManagerClient
    logs: LogsClient


def clients() -> Clients:
    """This process's clients, in the invoking function's region, each made at its first use."""
    return Clients(
        dynamodb=aws.client("dynamodb"),
        s3=aws.client("s3"),
        stepfunctions=aws.client("stepfunctions"),
        lambda_=aws.client("lambda"),
        scheduler=aws.client("scheduler"),
        secretsmanager=aws.client("secretsmanager"),
        logs=aws.client("logs"),
    )


def _stores(settings: RuntimeSettings, made: Clients) -> tuple[TasksTable, PayloadStore]:
    from serverless_agents.aws.payloads import PayloadStore
    from serverless_agents.aws.tasks_table import TasksTable

    table = TasksTable(settings.tasks_table, client=made.dynamodb, ttl_days=settings.task_ttl_days)
    return table, PayloadStore(settings.payload_bucket, client=made.s3)


@functools.cache
def task_service(settings: RuntimeSettings) -> TaskService:
    from serverless_agents.aws.connection_secrets import ConnectionSecretStore
    from serverless_agents.runtime.service import SensorTargets, TaskService

    made = clients()
    table, payloads = _stores(settings, made)
    registry = deployed_registry(settings.manifest_path)
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
        sfn_client=made.stepfunctions,
        lambda_client=made.lambda_,
        scheduler_client=made.scheduler,
        sensor_targets=targets,
        connection_secrets=ConnectionSecretStore(settings.deployment, client=made.secretsmanager),
        logs_client=made.logs,
    )


def async_state_machine_arns(settings: RuntimeSettings) -> list[str]:
    """The deployment's async agents' state machines, which the sweeper watches."""
    from serverless_agents.agent import AgentKind

    registry = deployed_registry(settings.manifest_path)
    return [f"{settings.state_machine_arn_prefix}{a.name}" for a in registry if a.kind is AgentKind.ASYNC]


@functools.cache
def finalizer(settings: RuntimeSettings) -> Finalizer:
    from serverless_agents.runtime.finalize import Finalizer

    agents = cached_manifest(settings.manifest_path).agents
    snapstart = frozenset(name for name, agent in agents.items() if agent.snapstart)
    return Finalizer(settings.deployment, clients().lambda_, snapstart)


@functools.cache
def sweeper(settings: RuntimeSettings) -> Sweeper:
    from serverless_agents.aws.connection_secrets import ConnectionSecretStore
    from serverless_agents.runtime.sensors import SensorSchedules
    from serverless_agents.runtime.sweeper import Sweeper

    made = clients()
    table, _ = _stores(settings, made)
    return Sweeper(
        table,
        async_state_machine_arns(settings),
        finalizer(settings),
        made.stepfunctions,
        lambda agent: SensorSchedules.of_agent(settings.deployment, agent, made.scheduler),
        ConnectionSecretStore(settings.deployment, client=made.secretsmanager),
    )


@functools.cache
def sensor_steps(settings: RuntimeSettings) -> SensorSteps:
    from serverless_agents.agent import BaseSensor
    from serverless_agents.runtime.sensors import SensorSchedules, SensorSteps

    loaded, instance = _agent_of_kind(settings, BaseSensor, "a sensor")
    made = clients()
    table, payloads = _stores(settings, made)
    schedules = SensorSchedules.of_agent(settings.deployment, loaded.name, made.scheduler)
    return SensorSteps(loaded.name, instance, loaded.settings, table, payloads, schedules)


@functools.cache
def async_steps(settings: RuntimeSettings) -> AsyncAgentSteps:
    from serverless_agents.agent import AsyncAgentBase
    from serverless_agents.deployment.job_events import job_events
    from serverless_agents.runtime.async_steps import AsyncAgentSteps

    loaded, instance = _agent_of_kind(settings, AsyncAgentBase, "an async agent")
    made = clients()
    table, payloads = _stores(settings, made)
    return AsyncAgentSteps(
        instance,
        loaded.settings.poll,
        table,
        payloads,
        made.stepfunctions,
        polls_per_execution=loaded.settings.polls_per_execution,
        execution_timeout=loaded.settings.execution_timeout,
        name=loaded.name,
        events=job_events(loaded.name, type(instance), loaded.settings),
    )


def sync_agent(settings: RuntimeSettings) -> SyncTarget:
    from serverless_agents.agent import SyncAgentBase
    from serverless_agents.runtime.sync import SyncTarget

    loaded, instance = _agent_of_kind(settings, SyncAgentBase, "a sync agent")
    return SyncTarget(loaded.name, instance, float(loaded.settings.timeout))


def _agent_of_kind(settings: RuntimeSettings, kind: type[AgentT], named: str) -> tuple[LoadedAgent, AgentT]:
    """The function's agent, which must be of the kind its handler serves (the CDK wires each kind's
    handlers to agents of that kind; a manifest edited under a deployed function is refused here)."""
    loaded = load_agent(settings.manifest_path, settings.agent)
    if not isinstance(loaded.instance, kind):
        raise ManifestError(f"agent {loaded.name!r} is not {named}")
    return loaded, loaded.instance
