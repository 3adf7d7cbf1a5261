"""flyteidl's agent servicers over the HTTP API: decode, call, encode; errors and metrics in `rpc`.

Deadlines: propeller gives each call the deadline its connector config names (`timeouts.<Operation>`, else
`defaultTimeout`, 10 s: flyteplugins/go/tasks/plugins/webapi/connector/config.go and `getFinalContext` in
plugin.go); the HTTP call gets what remains of it, less a margin to answer in, so a slow API becomes a clean
`DEADLINE_EXCEEDED` instead of a late reply. The adapter's own `--timeout` only serves calls that carry no
deadline. A sync agent's call is bounded by the agent's own `timeout` too, which its function enforces.

Callers are not trusted with other agents' tasks: a `resource_meta` is read only once the adapter's key
verifies it (`ApiCalls.task_id`), and only under a task type its agent serves, before any HTTP call.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from serverless_agents.adapter.capacity import time_left
from serverless_agents.adapter.errors import grpc_status
from serverless_agents.api.client import ResponseTimeout
from serverless_agents.exceptions import (
    AgentNotFound,
    DeadlineExceeded,
    InvalidRequest,
    ServerlessAgentsError,
    http_status_of,
)
from serverless_agents.runtime.task_logs import MAX_LINES

if TYPE_CHECKING:
    from serverless_agents.adapter.metrics import AdapterMetrics
    from serverless_agents.api.client import ApiClient
    from serverless_agents.flyte.resource_meta import ResourceMetaKeys

R = TypeVar("R")
_ANSWER_MARGIN = 0.2  # seconds kept back from the caller's deadline to send the answer
_SHORTEST_API_CALL = 0.1  # seconds: with less left for it, an HTTP call is not started
_LISTING_FOR_LABELS_TIMEOUT = 2.0  # seconds: a listing only for metric labels must not hold a call long
_LOG_LINES = 10 * MAX_LINES  # the most lines one GetTaskLogs stream answers
_LOG_CALLS = 20  # the most pages of the API one GetTaskLogs stream reads (a page may hold few lines)
_LOG_PAGE_SECONDS = 2.0  # what is left of the caller's deadline for another page to be asked


class ApiCalls:
    """What every servicer shares: the API client, the metrics, the per-call error handling, the keys that
    sign and verify `resource_meta`, and the deployed agents."""

    def __init__(
        self,
        api: ApiClient,
        metrics: AdapterMetrics,
        default_timeout: float,
        keys: ResourceMetaKeys,
        agents: AgentDirectory,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.default_timeout = default_timeout
        self.keys = keys
        self.agents = agents

    def timeout(self, context: grpc.ServicerContext) -> float:
        """What remains of the caller's deadline, less a margin to answer in; the default without one.
        Raises DeadlineExceeded when too little remains to call the API: a call that cannot finish is
        not started."""
        remaining = time_left(context)
        if remaining is None:
            return self.default_timeout
        if remaining - _ANSWER_MARGIN < _SHORTEST_API_CALL:
            raise DeadlineExceeded(
                f"{max(remaining, 0):.2f} s of the caller's deadline was left: too little to call the API, "
                "which was not called"
            )
        return remaining - _ANSWER_MARGIN

    def run(self, context: grpc.ServicerContext, task_type: str, operation: str, call: Callable[[], R]) -> R:
        """Time the call, count it, and turn any exception into a status on `context` (never a traceback)."""
        label = self.task_type_label(task_type)
        start = time.perf_counter()
        try:
            result = call()
        except Exception as e:
            code, message = grpc_status(e)
            self.metrics.failure.labels(label, operation, str(http_status_of(e))).inc()
            context.abort(code, message)  # raises: the client gets the status
            raise
        finally:
            self.metrics.latency.labels(label, operation).observe(time.perf_counter() - start)
        self.metrics.success.labels(label, operation).inc()
        return result

    def task_type_label(self, task_type: str) -> str:
        """The metrics' label for a caller's task type: a deployed one, else `other`."""
        self.agents.listed_once(self)
        return self.metrics.task_type_label(task_type)

    def task_id(self, resource_meta: bytes, task_type: str) -> str:
        """The task a caller's `resource_meta` names, once this adapter's key verified it and the agent it
        names serves `task_type` (the call's task category): a caller can neither make one up for another
        agent's task nor send one agent's under another's task type. Raises InvalidRequest otherwise,
        before any HTTP call reads or aborts anything."""
        meta = self.keys.verify(resource_meta)
        if meta.agent is not None and meta.agent not in self.agents.serving(task_type, self):
            raise InvalidRequest(
                "resource_meta.agent",
                f"{meta.agent!r} does not serve the task type {task_type[:80]!r} of this call",
            )
        return meta.task_id

    def on_task(
        self,
        context: grpc.ServicerContext,
        resource_meta: bytes,
        task_type: str,
        operation: str,
        call: Callable[[str, float], R],
    ) -> R:
        """GetTask or DeleteTask, for either protocol: `call(task_id, timeout)` on the task `resource_meta`
        names, verified first."""
        return self.run(
            context,
            task_type,
            operation,
            lambda: call(self.task_id(resource_meta, task_type), self.timeout(context)),
        )

    def log_pages(
        self,
        context: grpc.ServicerContext,
        resource_meta: bytes,
        task_type: str,
        lines: int,
        token: str,
    ) -> Iterator[tuple[agent_pb2.GetTaskLogsResponseBody, str]]:
        """GetTaskLogs for either protocol: the task's lines (`resource_meta` verified first), a page of the
        API at a time as they arrive, each with the token after it; `lines` of them at most (one page's
        worth when 0), from `token` on. At most `_LOG_CALLS` API calls a stream: a caller that wants more
        asks again with the last token, so no stream holds a call or the adapter's memory long; nor one
        whose deadline is near (less than `_LOG_PAGE_SECONDS` left): it ends with the token it has."""
        wanted = min(lines, _LOG_LINES) if lines > 0 else MAX_LINES

        def page(task_id: str, timeout: float) -> tuple[agent_pb2.GetTaskLogsResponseBody, str]:
            return self.api.get_task_logs(task_id, token, min(wanted, MAX_LINES), timeout=timeout)

        task_id = ""

        def first(verified: str, timeout: float) -> tuple[agent_pb2.GetTaskLogsResponseBody, str]:
            nonlocal task_id
            task_id = verified
            return page(verified, timeout)

        body, token = self.on_task(context, resource_meta, task_type, "logs", first)
        for _ in range(_LOG_CALLS - 1):
            yield body, token
            wanted -= len(body.structured_lines)
            remaining = context.time_remaining()
            if not token or wanted <= 0 or (remaining is not None and remaining < _LOG_PAGE_SECONDS):
                return  # the caller goes on from the token it has: a stream never ends in a timeout
            body, token = self.run(context, task_type, "logs", lambda: page(task_id, self.timeout(context)))
        yield body, token

    def create(
        self,
        context: grpc.ServicerContext,
        task_type: str,
        input_bytes: int,
        send: Callable[[float], agent_pb2.CreateTaskResponse],
    ) -> bytes:
        """CreateTask for either protocol: `send` builds the API's request (a bad one is the caller's
        error, mapped like any other) and sends it within the seconds given; the answer is the task's
        `resource_meta`, signed."""
        self.metrics.input_bytes.labels(self.task_type_label(task_type)).observe(input_bytes)
        return self.run(
            context, task_type, "create", lambda: self.keys.sign(send(self.timeout(context)).resource_meta)
        )


def _task_type(
    request: agent_pb2.GetTaskRequest
    | agent_pb2.DeleteTaskRequest
    | agent_pb2.GetTaskLogsRequest
    | agent_pb2.GetTaskMetricsRequest,
) -> str:
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
        return self._calls.on_task(
            context,
            request.resource_meta,
            _task_type(request),
            "get",
            lambda task_id, timeout: self._calls.api.get_task(task_id, timeout=timeout),
        )

    def DeleteTask(
        self, request: agent_pb2.DeleteTaskRequest, context: grpc.ServicerContext
    ) -> agent_pb2.DeleteTaskResponse:
        return self._calls.on_task(
            context,
            request.resource_meta,
            _task_type(request),
            "delete",
            lambda task_id, timeout: self._calls.api.delete_task(task_id, timeout=timeout),
        )

    def GetTaskMetrics(
        self, request: agent_pb2.GetTaskMetricsRequest, context: grpc.ServicerContext
    ) -> agent_pb2.GetTaskMetricsResponse:
        """What the project measures of the task (`runtime.task_metrics`): all of it, or the `queries`."""
        return self._calls.on_task(
            context,
            request.resource_meta,
            _task_type(request),
            "metrics",
            lambda task_id, timeout: self._calls.api.get_task_metrics(
                task_id, list(request.queries), timeout=timeout
            ),
        )

    def GetTaskLogs(
        self, request: agent_pb2.GetTaskLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[agent_pb2.GetTaskLogsResponse]:
        """The task's own lines: a body per page, then a header with the token to go on from (empty once
        every line is read)."""
        token = request.token
        for body, token_after in self._calls.log_pages(
            context, request.resource_meta, _task_type(request), request.lines, request.token
        ):
            token = token_after
            yield agent_pb2.GetTaskLogsResponse(body=body)
        yield agent_pb2.GetTaskLogsResponse(header=agent_pb2.GetTaskLogsResponseHeader(token=token))


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
    """`GET /v1/agents`, cached briefly: propeller asks every 10 s, and sync routing and the check of every
    `resource_meta` ask per call. Each listing also tells the metrics which task types are deployed."""

    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cached: agent_pb2.ListAgentsResponse | None = None
        self._fetched_at = 0.0
        self._tried_at = -ttl_seconds

    def agents(self, calls: ApiCalls, timeout: float | None = None) -> agent_pb2.ListAgentsResponse:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._fetched_at < self._ttl:
                return self._cached
            self._tried_at = time.monotonic()
        listing = calls.api.list_agents(timeout=timeout or calls.default_timeout)
        calls.metrics.know_task_types(_task_types(listing.agents))
        with self._lock:
            self._cached, self._fetched_at = listing, time.monotonic()
        return listing

    def listed_once(self, calls: ApiCalls) -> None:
        """Make sure the metrics know the deployed task types before the first call is counted: one try
        per TTL at most, briefly, its failure ignored (the call's own outcome is what matters)."""
        with self._lock:
            if self._cached is not None or time.monotonic() - self._tried_at < self._ttl:
                return
        with contextlib.suppress(ServerlessAgentsError):
            self.agents(calls, timeout=min(calls.default_timeout, _LISTING_FOR_LABELS_TIMEOUT))

    def serving(self, task_type: str, calls: ApiCalls) -> set[str]:
        """The names of the agents that serve `task_type` (several sensors may share `sensor`)."""
        return {str(agent.name) for agent in self.agents(calls).agents if task_type in _task_types([agent])}

    def sync_agent_for(self, task_type: str, version: int, calls: ApiCalls) -> str:
        for agent in self.agents(calls).agents:
            categories = [(c.name, c.version) for c in agent.supported_task_categories]
            if agent.is_sync and (task_type, version) in categories:
                return str(agent.name)
        raise AgentNotFound(f"no sync agent is deployed for task type {task_type[:80]!r} version {version}")


def _task_types(agents: Iterable[agent_pb2.Agent]) -> set[str]:
    return {
        str(task_type)
        for agent in agents
        for task_type in [*agent.supported_task_types, *(c.name for c in agent.supported_task_categories)]
    }


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
            raise AgentNotFound(f"no agent named {request.name[:80]!r} is deployed")

        return self._calls.run(context, "", "get_agent", call)
