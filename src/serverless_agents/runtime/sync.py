"""A sync agent's one call: decode the request, `do`, encode the resource with its outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flyteidl.admin import agent_pb2

from serverless_agents.agent import Phase, Resource
from serverless_agents.exceptions import InvalidRequest, LiteralConversionError
from serverless_agents.identity import task_id_for
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.translate import resource_message, task_context

if TYPE_CHECKING:
    from serverless_agents.agent import SyncAgentBase


def execute_sync(
    agent: SyncAgentBase, request: agent_pb2.CreateTaskRequest
) -> agent_pb2.ExecuteTaskSyncResponseHeader:
    execution_id = request.task_execution_metadata.task_execution_id
    task_id = (
        task_id_for(execution_id, request.output_prefix) if execution_id.node_execution_id.node_id else "sync"
    )
    task = task_context(task_id, request)
    if (task.template.type, task.template.task_type_version) != (agent.task_type, agent.task_type_version):
        raise InvalidRequest(
            "template.type",
            f"this agent serves {agent.task_type!r} version {agent.task_type_version}, "
            f"not {task.template.type!r} version {task.template.task_type_version}",
        )
    resource = call_agent(agent.do, task)
    try:
        message = resource_message(resource, task.template)
    except LiteralConversionError as e:
        # The agent's fault, not the caller's: the task fails, as an async agent's would.
        failed = Resource(Phase.FAILED, f"the agent's outputs do not match the task interface: {e}")
        message = resource_message(failed, task.template)
    return agent_pb2.ExecuteTaskSyncResponseHeader(resource=message)
