"""The project's HTTP API, as the api Lambda's Powertools resolver (a sync agent's route: `api.sync_api`).

    POST   /v1/tasks            CreateTaskRequest  -> CreateTaskResponse
    POST   /v1/flyte2/tasks     {"request", "flyte2Request"}  -> CreateTaskResponse (a Flyte 2 executor's)
    GET    /v1/tasks/{task_id}                     -> GetTaskResponse
    DELETE /v1/tasks/{task_id}                     -> DeleteTaskResponse
    GET    /v1/tasks/{task_id}/logs?token=&lines=  -> {"token", "body": GetTaskLogsResponseBody}
    GET    /v1/tasks/{task_id}/metrics?queries=    -> GetTaskMetricsResponse
    GET    /v1/agents                              -> ListAgentsResponse
    POST   /v1/sync/{agent}     CreateTaskRequest  -> ExecuteTaskSyncResponseHeader (resource with outputs)

Bodies are flyteidl messages in protobuf's JSON mapping. Errors are mapped to HTTP in one place
(`api.resolver.error_response`): `{"error": {"code", "message", "field"?}}` with one line a user can act on.
Path and query parameters are checked by Powertools' validation against the types below (pydantic).

A client says how long it waits for a create's answer (`X-Client-Timeout-Ms`, counted from API Gateway's
receipt of the request, `requestContext.requestTimeEpoch`): a create that arrives with too little of it
left starts nothing (`TaskService.create`), so a caller that has given up leaves no task behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from flyteidl.admin import agent_pb2

from serverless_agents.api.resolver import message_response, resolver
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import TASK_ID, check_task_id
from serverless_agents.runtime.task_logs import MAX_LINES, MAX_TOKEN

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from serverless_agents.runtime.service import TaskService


TaskId = Annotated[str, Path(pattern=f"^{TASK_ID.pattern}$", description="task id from resource_meta")]
LogToken = Annotated[str, Query(max_length=MAX_TOKEN, description="the token a previous page gave")]
LogLines = Annotated[int, Query(ge=1, le=MAX_LINES, description="the most lines this page holds")]
MetricQueries = Annotated[str, Query(max_length=1000, description="metric names, comma-separated")]


def create_api(service: Callable[[], TaskService]) -> APIGatewayRestResolver:
    """The api Lambda's routes; `service` is called per request so configuration is read lazily."""
    app = resolver(validation=True)

    def deadline() -> float | None:
        """When the client stops waiting (epoch seconds), if it said; a malformed value says nothing."""
        waits = app.current_event.headers.get(wire.CLIENT_TIMEOUT_HEADER) or ""
        # Read from the raw event: Powertools' accessor raises KeyError where an event lacks it.
        received_ms = (app.current_event.raw_event.get("requestContext") or {}).get("requestTimeEpoch")
        if not waits.isdigit() or not isinstance(received_ms, int) or not received_ms:
            return None
        return (int(received_ms) + int(waits)) / 1000

    @app.post("/v1/tasks")
    def create_task() -> Response[str]:
        request = wire.from_json(agent_pb2.CreateTaskRequest, app.current_event.body)
        return message_response(service().create(request, deadline=deadline()), 201)

    @app.post("/v1/flyte2/tasks")
    def create_flyte2_task() -> Response[str]:
        """A Flyte 2 executor's CreateTask: its Flyte 1 translation beside its own request, whose
        `connection.secrets` the service keeps in Secrets Manager alone (serverless_agents.aws.
        connection_secrets)."""
        body = wire.json_object(app.current_event.body)
        flyte2_request = body.get("flyte2Request")
        if not isinstance(flyte2_request, dict):
            raise InvalidRequest(
                "flyte2Request", "required: the executor's CreateTaskRequest (protobuf JSON)"
            )
        request = wire.from_dict(agent_pb2.CreateTaskRequest, body.get("request"), field="request")
        return message_response(service().create(request, flyte2_request, deadline=deadline()), 201)

    @app.get("/v1/tasks/<task_id>")
    def get_task(task_id: TaskId) -> Response[str]:
        return message_response(service().get(check_task_id(task_id)))

    @app.delete("/v1/tasks/<task_id>")
    def delete_task(task_id: TaskId) -> Response[str]:
        service().delete(check_task_id(task_id))
        return message_response(agent_pb2.DeleteTaskResponse())

    @app.get("/v1/tasks/<task_id>/logs")
    def get_task_logs(task_id: TaskId, token: LogToken = "", lines: LogLines = MAX_LINES) -> Response[str]:
        """A page of the task's own log lines, as flyteidl's `GetTaskLogsResponseBody`, and the token of
        the next page (empty on the last)."""
        page = service().logs(check_task_id(task_id), token, lines)
        body = agent_pb2.GetTaskLogsResponseBody()
        for line in page.lines:
            body.results.append(line.message)
            structured = body.structured_lines.add(message=line.message, originator=agent_pb2.SYSTEM)
            structured.timestamp.FromMilliseconds(line.timestamp_ms)
        return Response(
            200, "application/json", json.dumps({"token": page.token, "body": wire.to_dict(body)})
        )

    @app.get("/v1/tasks/<task_id>/metrics")
    def get_task_metrics(task_id: TaskId, queries: MetricQueries = "") -> Response[str]:
        names = [name.strip() for name in queries.split(",") if name.strip()]
        results = service().metrics(check_task_id(task_id), names)
        return Response(200, "application/json", json.dumps({"results": results}))

    @app.get("/v1/agents")
    def list_agents() -> Response[str]:
        return message_response(service().list_agents())

    return app
