"""A sync agent's one call: decode the request, `do` within the agent's time limit, encode the resource.

The agent's own failure is a Resource (FAILED, or RETRYABLE_FAILED when transient: `endings`), answered
normally: propeller retries a gRPC error as a system failure and would repeat the call's side effects. A bad
request is the caller's fault (`InvalidRequest`, a 400), and so is a task type this agent does not serve.

The time limit is the agent's `timeout` from the manifest, which is also its Lambda's timeout: the call runs
in a worker thread so that the function can still answer `DeadlineExceeded` (HTTP 504, gRPC DEADLINE_EXCEEDED)
naming the agent and its limit before Lambda would cut it off without a word.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from flyteidl.admin import agent_pb2

from serverless_agents.exceptions import DeadlineExceeded, InvalidRequest
from serverless_agents.flyte.identity import task_id_for
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.endings import failure_resource
from serverless_agents.runtime.translate import resource_message, task_context

if TYPE_CHECKING:
    from serverless_agents.agent import SyncAgentBase

T = TypeVar("T")
#: What the function keeps back from its Lambda timeout to encode and send the answer.
ANSWER_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class SyncTarget:
    """The agent a sync function serves: its manifest name, the instance, and its `timeout` in seconds."""

    name: str
    agent: SyncAgentBase
    timeout: float


def execute_sync(
    target: SyncTarget, request: agent_pb2.CreateTaskRequest, *, time_left: float | None = None
) -> agent_pb2.ExecuteTaskSyncResponseHeader:
    """Run the call; `time_left` is what the function has before it is stopped (Lambda's remaining time)."""
    agent = target.agent
    execution_id = request.task_execution_metadata.task_execution_id
    task_id = (
        task_id_for(target.name, execution_id, request.output_prefix)
        if execution_id.node_execution_id.node_id
        else "sync"
    )
    task = task_context(task_id, request)
    if (task.template.type, task.template.task_type_version) != (agent.task_type, agent.task_type_version):
        raise InvalidRequest(
            "template.type",
            f"this agent serves {agent.task_type!r} version {agent.task_type_version}, "
            f"not {task.template.type!r} version {task.template.task_type_version}",
        )
    limit = target.timeout if time_left is None else min(target.timeout, time_left - ANSWER_MARGIN_SECONDS)
    try:
        resource = _within(limit, lambda: call_agent(agent.do, task))
    except _LimitReached:
        raise DeadlineExceeded(
            f"sync agent {target.name!r} did not answer within its {target.timeout:g} s limit "
            "(its timeout in agents.toml)"
        ) from None
    except Exception as e:  # the agent's own failure, a timeout of its remote service included
        resource = failure_resource(e)
    return agent_pb2.ExecuteTaskSyncResponseHeader(resource=resource_message(resource, task.template))


class _LimitReached(Exception):
    """The agent's time limit ran out (unlike a TimeoutError of the agent's own, which is its failure)."""


def _within(seconds: float, call: Callable[[], T]) -> T:
    """`call()`, or `_LimitReached` after `seconds`. The call cannot be stopped: it runs on, unanswered."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as e:  # handed to the caller's thread, which decides what it means
            failure.append(e)

    # The call sees what the invocation sees: settings and logging context live in context variables.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(run,), name="sync-agent-call", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        raise _LimitReached
    if failure:
        raise failure[0]
    return outcome[0]
