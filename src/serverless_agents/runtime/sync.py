"""A sync agent's one call: decode the request, `do`, encode the resource with its outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flyteidl.admin import agent_pb2

from serverless_agents.agent import resolve
from serverless_agents.identity import task_id_for
from serverless_agents.runtime.translate import resource_message, task_context

if TYPE_CHECKING:
    from serverless_agents.agent import SyncAgentBase


def execute_sync(
    agent: SyncAgentBase, request: agent_pb2.CreateTaskRequest
) -> agent_pb2.ExecuteTaskSyncResponseHeader:
    execution_id = request.task_execution_metadata.task_execution_id
    task_id = task_id_for(execution_id) if execution_id.node_execution_id.node_id else "sync"
    task = task_context(task_id, request)
    resource = resolve(agent.do(task))
    return agent_pb2.ExecuteTaskSyncResponseHeader(resource=resource_message(resource, task.template))
