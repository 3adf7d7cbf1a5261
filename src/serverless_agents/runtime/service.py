"""What the HTTP API does: submit, describe and cancel tasks, and list the deployed agents.

Submitting is idempotent per Flyte task attempt: the task id derives from its `TaskExecutionIdentifier`,
the table insert is conditional, and the execution is named after the task, so a repeated create (or a
retry after a crash between the two writes) starts at most one execution.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flyteidl.admin import agent_pb2

from serverless_agents import aws, wire
from serverless_agents.agent import AgentKind, Phase
from serverless_agents.console import task_links
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.identity import task_id_for
from serverless_agents.naming import agent_log_group, execution_arn
from serverless_agents.payloads import STATE_PAYLOAD_LIMIT
from serverless_agents.runtime.translate import (
    check_create_request,
    literal_map_from_json,
    task_context,
    to_resource_message,
)
from serverless_agents.tasks_table import TaskRecord

if TYPE_CHECKING:
    from serverless_agents.payloads import PayloadStore
    from serverless_agents.registry import AgentRegistry
    from serverless_agents.tasks_table import TasksTable


# Standard workflows are billed per state transition: Create and the first Choice, then Wait, Get and Choice
# for each poll (see statemachines/async_agent.asl.json).
_STATE_TRANSITIONS_BEFORE_POLLING = 2
_STATE_TRANSITIONS_PER_POLL = 3


def resource_meta(task_id: str, agent: str) -> bytes:
    """What Flyte keeps to find the task again: small, and naming nothing secret."""
    return json.dumps({"task_id": task_id, "agent": agent}, separators=(",", ":")).encode()


class TaskService:
    def __init__(
        self,
        registry: AgentRegistry,
        table: TasksTable,
        payloads: PayloadStore,
        state_machine_arn_prefix: str,
        deployment: str,
        sfn_client: Any = None,
    ) -> None:
        self.registry = registry
        self.deployment = deployment
        self.table = table
        self.payloads = payloads
        self.state_machine_arn_prefix = state_machine_arn_prefix
        self._sfn = sfn_client or aws.client("stepfunctions")

    def submit(self, request: agent_pb2.CreateTaskRequest) -> agent_pb2.CreateTaskResponse:
        check_create_request(request)
        template = request.template
        agent = self.registry.for_task(template.type, template.task_type_version)
        if agent.kind is not AgentKind.ASYNC:
            raise InvalidRequest(
                "template.type",
                f"{template.type!r} is served by the {agent.kind.value} agent {agent.name!r}; "
                + (
                    f"call POST /v1/sync/{agent.name}"
                    if agent.kind is AgentKind.SYNC
                    else "not deployable yet"
                ),
            )
        if not request.task_execution_metadata.HasField("task_execution_id"):
            raise InvalidRequest("taskExecutionMetadata.taskExecutionId", "required: it identifies the task")
        task_id = task_id_for(request.task_execution_metadata.task_execution_id)
        task_context(task_id, request)  # decoding the inputs now turns bad ones into a 400, before any write

        state_machine_arn = f"{self.state_machine_arn_prefix}{agent.name}"
        execution = execution_arn(state_machine_arn, task_id)
        request_json, request_ref = self.payloads.offload(
            f"requests/{task_id}.json", wire.to_dict(request), STATE_PAYLOAD_LIMIT
        )
        self.table.create(TaskRecord(task_id, agent.name, agent.kind.value, execution_arn=execution))
        execution_input = {"task_id": task_id, "agent": agent.name}
        execution_input |= {"request_ref": request_ref} if request_ref else {"request": request_json}
        try:
            with aws.transient_errors_as_unavailable("Step Functions"):
                self._sfn.start_execution(
                    stateMachineArn=state_machine_arn,
                    name=task_id,
                    input=json.dumps(execution_input, separators=(",", ":")),
                )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            pass  # a repeated create: the task's one execution runs already (or ran)
        return agent_pb2.CreateTaskResponse(resource_meta=resource_meta(task_id, agent.name))

    def describe(self, task_id: str) -> agent_pb2.GetTaskResponse:
        record = self.table.get(task_id)
        outputs_json = record.outputs
        if outputs_json is None and record.outputs_ref:
            outputs_json = self.payloads.get_json(record.outputs_ref)
        custom_info = dict(record.custom_info)
        log_links = list(record.log_links)
        if record.execution_arn:
            # What Flyte's UI shows: where the task runs, and what it has cost so far.
            custom_info |= {
                "execution_arn": record.execution_arn,
                "polls": record.polls,
                "state_transitions": _STATE_TRANSITIONS_BEFORE_POLLING
                + _STATE_TRANSITIONS_PER_POLL * record.polls,
            }
            log_links += task_links(record.execution_arn, agent_log_group(self.deployment, record.agent))
        resource = to_resource_message(
            record.phase,
            record.message,
            log_links,
            custom_info,
            literal_map_from_json(outputs_json) if outputs_json is not None else None,
        )
        return agent_pb2.GetTaskResponse(resource=resource)

    def cancel(self, task_id: str) -> None:
        """Stop the task's execution; the finalize Lambda then runs the agent's delete (once)."""
        record = self.table.get(task_id)
        if record.phase.is_terminal or record.job_done or record.cleanup is not None:
            return
        try:
            with aws.transient_errors_as_unavailable("Step Functions"):
                self._sfn.stop_execution(
                    executionArn=record.execution_arn, error="Aborted", cause="DeleteTask was called"
                )
        except self._sfn.exceptions.ExecutionDoesNotExist:
            # The execution never started, so no job exists: end the task here.
            if self.table.claim_cleanup(task_id) is not None:
                self.table.finish_cleanup(task_id, Phase.ABORTED, "aborted before it started")

    def list_agents(self) -> agent_pb2.ListAgentsResponse:
        return agent_pb2.ListAgentsResponse(
            agents=[
                agent_pb2.Agent(
                    name=agent.name,
                    is_sync=agent.kind is AgentKind.SYNC,
                    supported_task_types=[agent.task_type],
                    supported_task_categories=[
                        agent_pb2.TaskCategory(name=agent.task_type, version=agent.version)
                    ],
                )
                for agent in self.registry
            ]
        )
