"""`EcsFargateAgent`: create starts the container on Fargate, get follows it, delete stops it.

The package's docstring (`serverless_agents.agents.ecs`) tells how a task maps onto ECS.
"""

from __future__ import annotations

from typing import Any, ClassVar

from serverless_agents import aws
from serverless_agents.agent import AsyncAgentBase, Phase, Resource, ResourceMetadata, TaskContext
from serverless_agents.agents.ecs.container import (
    environment,
    image_and_resources,
    placeholder_values,
    reads_task_template,
    render_args,
)
from serverless_agents.agents.ecs.links import log_links
from serverless_agents.agents.ecs.outputs import output_prefix, put, stopped
from serverless_agents.agents.ecs.run_task import run_task
from serverless_agents.agents.ecs.settings import EcsSettings
from serverless_agents.agents.ecs.sizing import fargate_size
from serverless_agents.agents.ecs.task_definitions import task_definition_arn, task_definition_shape
from serverless_agents.exceptions import AgentError

TASK_TYPE = "ecs_fargate"

_STARTING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
_ENDED = frozenset({"STOPPED", "DELETED"})


class EcsTaskMetadata(ResourceMetadata):
    cluster: str
    task_arn: str
    region: str
    output_prefix: str
    #: Whether the task interface declares outputs, so a missing outputs.pb is a failure.
    expects_outputs: bool
    log_group: str | None = None


class EcsFargateAgent(AsyncAgentBase[EcsTaskMetadata]):
    task_type = TASK_TYPE
    metadata_type = EcsTaskMetadata
    # ECS sends one event per status change; only STOPPED ends a task, so only it wakes the get (the
    # earlier phases show at the polls). The task ARN names the job.
    events: ClassVar[list[dict[str, Any]]] = [
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {"lastStatus": ["STOPPED"]},
        }
    ]
    event_job_id = "detail.taskArn"

    def job_id(self, metadata: EcsTaskMetadata) -> str:
        return metadata.task_arn

    def create(self, task: TaskContext) -> EcsTaskMetadata:
        settings = EcsSettings.resolve(self.config, task.custom)
        template = task.template
        if not template.HasField("container") or not template.container.image:
            raise AgentError(
                "the task template has no container image: an ecs_fargate task runs template.container "
                "(see docs/agents/ecs.md for the flytekit task class)"
            )
        prefix = output_prefix(task.output_prefix)
        image, resources = image_and_resources(task)
        size = fargate_size(resources)
        ecs = aws.client("ecs")
        region = str(ecs.meta.region_name)

        values = placeholder_values(task.task_id, prefix, settings.raw_output_prefix)
        args = [*template.container.command, *template.container.args]
        command = render_args(args, values, task.literals)
        put(f"{prefix}/inputs.pb", task.literals.SerializeToString())
        if reads_task_template(args):
            put(values["tasktemplatepath"], template.SerializeToString())

        definition = task_definition_arn(
            ecs, task_definition_shape(image, size, settings, region, template.container.architecture)
        )
        arn = run_task(ecs, task, settings, definition, command, environment(task))
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
        links = log_links(metadata)
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
        return stopped(metadata, ecs_task, links, info)

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
