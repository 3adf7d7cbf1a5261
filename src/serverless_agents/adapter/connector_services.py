"""flyteidl2's connector services, for Flyte 2's executor, over the same HTTP API as Flyte 1's agent services.

The executor's connector plugin (flyteorg/flyte, flyteplugins/go/tasks/plugins/webapi/connector/plugin.go)
calls CreateTask, then GetTask until the phase is terminal, DeleteTask on abort, and ListConnectors every
`pollInterval` to learn which task types go where (client.go). CreateTask sends the API the executor's
own request (a Flyte 2 connector gets it unchanged, its `Connection.secrets` kept in Secrets Manager: see
`serverless_agents.aws.connection_secrets`) beside its translation into flyteidl
(`serverless_agents.flyte.flyte2_messages`), which routes and names the task; every call goes through the same
`ApiCalls` as Flyte 1's servicers (one deadline rule, one error mapping, one set of metrics), and answers are
translated back. Flyte 2 has no
sync service, so sync agents are not offered to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from flyteidl2.connector import connector_pb2, service_pb2, service_pb2_grpc
from flyteidl2.logs.dataplane import payload_pb2

from serverless_agents.exceptions import AgentNotFound
from serverless_agents.flyte import flyte2_messages, wire
from serverless_agents.security.secrets import mask_secrets

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import grpc
    from flyteidl.admin import agent_pb2

    from serverless_agents.adapter.servicers import AgentDirectory, ApiCalls

R = TypeVar("R")

#: What `grpc.health.v1` reports SERVING for, beside Flyte 1's services.
SERVICE_NAMES = tuple(service.full_name for service in service_pb2.DESCRIPTOR.services_by_name.values())


def add_flyte2_services(server: grpc.Server, calls: ApiCalls, agents: AgentDirectory) -> None:
    service_pb2_grpc.add_AsyncConnectorServiceServicer_to_server(AsyncConnectorServicer(calls), server)
    service_pb2_grpc.add_ConnectorMetadataServiceServicer_to_server(
        ConnectorMetadataServicer(calls, agents), server
    )


class AsyncConnectorServicer(service_pb2_grpc.AsyncConnectorServiceServicer):  # type: ignore[misc]
    def __init__(self, calls: ApiCalls) -> None:
        self._calls = calls

    def CreateTask(
        self, request: connector_pb2.CreateTaskRequest, context: grpc.ServicerContext
    ) -> connector_pb2.CreateTaskResponse:
        def send(timeout: float) -> agent_pb2.CreateTaskResponse:
            # The executor's request travels as it came (Connection.secrets included, in this HTTPS body
            # only: the API keeps them in Secrets Manager), beside its translation for routing. This
            # process masks the values from now on, as every process that holds them does.
            mask_secrets(dict(request.connection.secrets))
            return self._calls.api.create_flyte2_task(
                flyte2_messages.create_request(request), wire.to_dict(request), timeout=timeout
            )

        resource_meta = self._calls.create(context, request.template.type, request.inputs.ByteSize(), send)
        return connector_pb2.CreateTaskResponse(resource_meta=resource_meta)

    def GetTask(
        self, request: connector_pb2.GetTaskRequest, context: grpc.ServicerContext
    ) -> connector_pb2.GetTaskResponse:
        def get(task_id: str, timeout: float) -> connector_pb2.GetTaskResponse:
            answer = self._calls.api.get_task(task_id, timeout=timeout)
            return connector_pb2.GetTaskResponse(resource=flyte2_messages.resource(answer.resource))

        return self._on_task(request, context, "get", get)

    def DeleteTask(
        self, request: connector_pb2.DeleteTaskRequest, context: grpc.ServicerContext
    ) -> connector_pb2.DeleteTaskResponse:
        def delete(task_id: str, timeout: float) -> connector_pb2.DeleteTaskResponse:
            self._calls.api.delete_task(task_id, timeout=timeout)
            return connector_pb2.DeleteTaskResponse()

        return self._on_task(request, context, "delete", delete)

    def _on_task(
        self,
        request: connector_pb2.GetTaskRequest | connector_pb2.DeleteTaskRequest,
        context: grpc.ServicerContext,
        operation: str,
        call: Callable[[str, float], R],
    ) -> R:
        """A call on the task a `resource_meta` names (verified). The Connection the executor sends again is
        the one it sent with CreateTask (plugin.go keeps it in its resource state), which the task has
        already: it is not forwarded."""
        return self._calls.on_task(
            context, request.resource_meta, request.task_category.name, operation, call
        )

    def GetTaskMetrics(
        self, request: connector_pb2.GetTaskMetricsRequest, context: grpc.ServicerContext
    ) -> connector_pb2.GetTaskMetricsResponse:
        """What the project measures of the task (`runtime.task_metrics`): all of it, or the `queries`."""

        def metrics(task_id: str, timeout: float) -> connector_pb2.GetTaskMetricsResponse:
            answer = self._calls.api.get_task_metrics(task_id, list(request.queries), timeout=timeout)
            return wire.from_dict(
                connector_pb2.GetTaskMetricsResponse, wire.to_dict(answer), field="response"
            )

        return self._calls.on_task(
            context, request.resource_meta, request.task_category.name, "metrics", metrics
        )

    def GetTaskLogs(
        self, request: connector_pb2.GetTaskLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[connector_pb2.GetTaskLogsResponse]:
        """The task's own lines as flyteidl2's structured `LogLine`s: a body per page, then a header with
        the token to go on from (empty once every line is read), as flyte-sdk's connector server streams
        body / header pages (flyte/connectors/_server.py, `GetTaskLogs`)."""
        token = request.token
        for body, token_after in self._calls.log_pages(
            context, request.resource_meta, request.task_category.name, request.lines, request.token
        ):
            token = token_after
            yield connector_pb2.GetTaskLogsResponse(body=_log_body(body))
        yield connector_pb2.GetTaskLogsResponse(header=connector_pb2.GetTaskLogsResponseHeader(token=token))


def _log_body(body: agent_pb2.GetTaskLogsResponseBody) -> connector_pb2.GetTaskLogsResponseBody:
    converted = connector_pb2.GetTaskLogsResponseBody(results=body.results)
    for line in body.structured_lines:
        converted.lines.add(timestamp=line.timestamp, message=line.message, originator=payload_pb2.SYSTEM)
    return converted


class ConnectorMetadataServicer(service_pb2_grpc.ConnectorMetadataServiceServicer):  # type: ignore[misc]
    """The async agents and sensors, as connectors: the executor routes each of their task categories here."""

    def __init__(self, calls: ApiCalls, agents: AgentDirectory) -> None:
        self._calls = calls
        self._agents = agents

    def _connectors(self) -> list[connector_pb2.Connector]:
        return [_connector(agent) for agent in self._agents.agents(self._calls).agents if not agent.is_sync]

    def ListConnectors(
        self, request: connector_pb2.ListConnectorsRequest, context: grpc.ServicerContext
    ) -> connector_pb2.ListConnectorsResponse:
        return self._calls.run(
            context,
            "",
            "list_connectors",
            lambda: connector_pb2.ListConnectorsResponse(connectors=self._connectors()),
        )

    def GetConnector(
        self, request: connector_pb2.GetConnectorRequest, context: grpc.ServicerContext
    ) -> connector_pb2.GetConnectorResponse:
        def call() -> connector_pb2.GetConnectorResponse:
            for connector in self._connectors():
                if connector.name == request.name:
                    return connector_pb2.GetConnectorResponse(connector=connector)
            raise AgentNotFound(f"no async agent or sensor named {request.name[:80]!r} is deployed")

        return self._calls.run(context, "", "get_connector", call)


def _connector(agent: agent_pb2.Agent) -> connector_pb2.Connector:
    return connector_pb2.Connector(
        name=agent.name,
        supported_task_categories=[
            connector_pb2.TaskCategory(name=category.name, version=category.version)
            for category in agent.supported_task_categories
        ],
    )
