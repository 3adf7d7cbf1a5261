"""flyteidl's agent servicers over the HTTP API: decode, call, encode; errors and metrics in `rpc`.

Deadlines: propeller gives each call the deadline its connector config names (`timeouts.<Operation>`, else
`defaultTimeout`, 10 s: flyteplugins/go/tasks/plugins/webapi/connector/config.go and `getFinalContext` in
plugin.go); the HTTP call gets what remains of it, less a margin to answer in, so a slow API becomes a clean
`DEADLINE_EXCEEDED` instead of a late reply. The adapter's own `--timeout` only serves calls that carry no
deadline. A sync agent's call is bounded by the agent's own `timeout` too, which its function enforces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from serverless_agents.adapter.errors import grpc_status
from serverless_agents.client import ResponseTimeout
from serverless_agents.exceptions import AgentNotFound, DeadlineExceeded
from serverless_agents.resource_meta import task_id_from_resource_meta

if TYPE_CHECKING:
    from serverless_agents.adapter.metrics import AdapterMetrics
    from serverless_agents.client import ApiClient

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
R = TypeVar("R")
_ANSWER_MARGIN = 0.2  # seconds kept back from the caller's deadline to send the answer


class ApiCalls:
    """What every servicer shares: the API client, the metrics, and the per-call error handling."""

    def __init__(self, api: ApiClient, metrics: AdapterMetrics, default_timeout: float) -> None:
        self.api = api
        self.metrics = metrics
        self.default_timeout = default_timeout

    def timeout(self, context: grpc.ServicerContext) -> float:
        """What remains of the caller's deadline, less a margin to answer in; the default without one."""
        remaining = context.time_remaining()
        if remaining is None:
            return self.default_timeout
        return max(0.1, remaining - _ANSWER_MARGIN)

    def run(self, context: grpc.ServicerContext, task_type: str, operation: str, call: Callable[[], R]) -> R:
        """Time the call, count it, and turn any exception into a status on `context` (never a traceback)."""
        start = time.perf_counter()
        try:
            result = call()
        except Exception as e:
            code, message = grpc_status(e)
            self.metrics.failure.labels(task_type, operation, str(_HTTP_STATUS.get(code, 500))).inc()
            context.abort(code, message)  # raises: the client gets the status
            raise
        finally:
            self.metrics.latency.labels(task_type, operation).observe(time.perf_counter() - start)
        self.metrics.success.labels(task_type, operation).inc()
        return result

    def create(
        self,
        context: grpc.ServicerContext,
        task_type: str,
        input_bytes: int,
        send: Callable[[float], agent_pb2.CreateTaskResponse],
    ) -> bytes:
        """CreateTask for either protocol: `send` builds the API's request (a bad one is the caller's
        error, mapped like any other) and sends it within the seconds given; the answer is the task's
        `resource_meta`."""
        self.metrics.input_bytes.labels(task_type).observe(input_bytes)
        timeout = self.timeout(context)
        return self.run(context, task_type, "create", lambda: bytes(send(timeout).resource_meta))


def _task_type(request: agent_pb2.GetTaskRequest | agent_pb2.DeleteTaskRequest) -> str:
    """Propeller sends the task category and the deprecated `task_type`: prefer the category."""
    if request.HasField("task_category") and request.task_category.name:
        return str(request.task_category.name)
    return str(request.task_type)


class AsyncAgentServicer(agent_pb2_grpc.AsyncAgentServiceServicer):  # type: ignore[misc]
    def __init__(self, calls: ApiCalls) -> None:
        self._calls = calls

    def CreateTask(
        self, request: agent_pb2.CreateTaskRequest, context: grpc.ServicerContext
    ) -> agent_pb2.CreateTaskResponse:
        resource_meta = self._calls.create(
            context,
            request.template.type,
            request.inputs.ByteSize(),
            lambda timeout: self._calls.api.create_task(request, timeout=timeout),
        )
        return agent_pb2.CreateTaskResponse(resource_meta=resource_meta)

    def GetTask(
        self, request: agent_pb2.GetTaskRequest, context: grpc.ServicerContext
    ) -> agent_pb2.GetTaskResponse:
        timeout = self._calls.timeout(context)
        return self._calls.run(
            context,
            _task_type(request),
            "get",
            lambda: self._calls.api.get_task(
                task_id_from_resource_meta(request.resource_meta), timeout=timeout
            ),
        )

    def DeleteTask(
        self, request: agent_pb2.DeleteTaskRequest, context: grpc.ServicerContext
    ) -> agent_pb2.DeleteTaskResponse:
        timeout = self._calls.timeout(context)
        return self._calls.run(
            context,
            _task_type(request),
            "delete",
            lambda: self._calls.api.delete_task(
                task_id_from_resource_meta(request.resource_meta), timeout=timeout
            ),
        )

    def GetTaskMetrics(self, request: agent_pb2.GetTaskMetricsRequest, context: grpc.ServicerContext) -> None:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "GetTaskMetrics is not supported: see the task's CloudWatch log link for its Lambda metrics",
        )

    def GetTaskLogs(
        self, request: agent_pb2.GetTaskLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[agent_pb2.GetTaskLogsResponse]:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "GetTaskLogs is not supported: follow the task's log links (Step Functions, CloudWatch)",
        )


class SyncAgentServicer(agent_pb2_grpc.SyncAgentServiceServicer):  # type: ignore[misc]
    """`ExecuteTaskSync`: a stream of header then inputs in, one response carrying the resource out."""

    def __init__(self, calls: ApiCalls, agents: AgentDirectory) -> None:
        self._calls = calls
        self._agents = agents

    def ExecuteTaskSync(
        self, request_iterator: Iterator[agent_pb2.ExecuteTaskSyncRequest], context: grpc.ServicerContext
    ) -> Iterator[agent_pb2.ExecuteTaskSyncResponse]:
        request, version = _sync_request(request_iterator, context)
        task_type = request.template.type

        def call() -> agent_pb2.ExecuteTaskSyncResponse:
            agent = self._agents.sync_agent_for(task_type, version, self._calls)
            timeout = self._calls.timeout(context)
            try:
                header = self._calls.api.execute_sync(agent, request, timeout=timeout)
            except ResponseTimeout as e:
                raise DeadlineExceeded(
                    f"sync agent {agent!r} did not answer within the caller's deadline "
                    f"({e.seconds:.1f} s left of it): raise propeller's timeouts.ExecuteTaskSync "
                    "above the agent's timeout"
                ) from None
            return agent_pb2.ExecuteTaskSyncResponse(header=header)

        yield self._calls.run(context, task_type, "do", call)


def _sync_request(
    messages: Iterator[agent_pb2.ExecuteTaskSyncRequest], context: grpc.ServicerContext
) -> tuple[agent_pb2.CreateTaskRequest, int]:
    """Fold the stream (header, then inputs) into the CreateTaskRequest the HTTP API takes."""
    request = agent_pb2.CreateTaskRequest()
    header: agent_pb2.CreateRequestHeader | None = None
    for message in messages:
        if message.HasField("header"):
            header = message.header
        elif message.HasField("inputs"):
            request.inputs.CopyFrom(message.inputs)
    if header is None:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, "header: the first ExecuteTaskSyncRequest must carry it"
        )
        raise AssertionError  # abort raised
    request.template.CopyFrom(header.template)
    request.output_prefix = header.output_prefix
    request.task_execution_metadata.CopyFrom(header.task_execution_metadata)
    return request, int(header.template.task_type_version)


class AgentDirectory:
    """`GET /v1/agents`, cached briefly: propeller asks every 10 s, and sync routing asks per call."""

    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cached: agent_pb2.ListAgentsResponse | None = None
        self._fetched_at = 0.0

    def agents(self, calls: ApiCalls) -> agent_pb2.ListAgentsResponse:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._fetched_at < self._ttl:
                return self._cached
        listing = calls.api.list_agents(timeout=calls.default_timeout)
        with self._lock:
            self._cached, self._fetched_at = listing, time.monotonic()
        return listing

    def sync_agent_for(self, task_type: str, version: int, calls: ApiCalls) -> str:
        for agent in self.agents(calls).agents:
            categories = [(c.name, c.version) for c in agent.supported_task_categories]
            if agent.is_sync and (task_type, version) in categories:
                return str(agent.name)
        raise AgentNotFound(f"no sync agent is deployed for task type {task_type!r} version {version}")


class AgentMetadataServicer(agent_pb2_grpc.AgentMetadataServiceServicer):  # type: ignore[misc]
    def __init__(self, calls: ApiCalls, agents: AgentDirectory) -> None:
        self._calls = calls
        self._agents = agents

    def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, context: grpc.ServicerContext
    ) -> agent_pb2.ListAgentsResponse:
        return self._calls.run(context, "", "list_agents", lambda: self._agents.agents(self._calls))

    def GetAgent(
        self, request: agent_pb2.GetAgentRequest, context: grpc.ServicerContext
    ) -> agent_pb2.GetAgentResponse:
        def call() -> agent_pb2.GetAgentResponse:
            for agent in self._agents.agents(self._calls).agents:
                if agent.name == request.name:
                    return agent_pb2.GetAgentResponse(agent=agent)
            raise AgentNotFound(f"no agent named {request.name!r} is deployed")

        return self._calls.run(context, "", "get_agent", call)
