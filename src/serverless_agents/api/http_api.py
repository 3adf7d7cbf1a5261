"""The project's HTTP API, as Powertools resolvers for the api and sync Lambdas.

    POST   /v1/tasks            CreateTaskRequest  -> CreateTaskResponse
    POST   /v1/flyte2/tasks     {"request", "flyte2Request"}  -> CreateTaskResponse (a Flyte 2 executor's)
    GET    /v1/tasks/{task_id}                     -> GetTaskResponse
    DELETE /v1/tasks/{task_id}                     -> DeleteTaskResponse
    GET    /v1/tasks/{task_id}/logs?token=&lines=  -> {"token", "body": GetTaskLogsResponseBody}
    GET    /v1/tasks/{task_id}/metrics?queries=    -> GetTaskMetricsResponse
    GET    /v1/agents                              -> ListAgentsResponse
    POST   /v1/sync/{agent}     CreateTaskRequest  -> ExecuteTaskSyncResponseHeader (resource with outputs)

Bodies are flyteidl messages in protobuf's JSON mapping. Errors are mapped to HTTP here and nowhere else
(`error_response`): `{"error": {"code", "message", "field"?}}` with one line a user can act on.

A client says how long it waits for a create's answer (`X-Client-Timeout-Ms`, counted from API Gateway's
receipt of the request, `requestContext.requestTimeEpoch`): a create that arrives with too little of it
left starts nothing (`TaskService.create`), so a caller that has given up leaves no task behind.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from flyteidl.admin import agent_pb2

from serverless_agents.exceptions import (
    AgentNotFound,
    InvalidRequest,
    RouteNotFound,
    ServerlessAgentsError,
    http_status_of,
)
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import AGENT_NAME, TASK_ID, check_task_id
from serverless_agents.runtime.task_logs import MAX_LINES, MAX_TOKEN

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from google.protobuf.message import Message

    from serverless_agents.runtime.service import TaskService
    from serverless_agents.runtime.sync import SyncTarget

logger = logging.getLogger(__name__)

TaskId = Annotated[str, Path(pattern=f"^{TASK_ID.pattern}$", description="task id from resource_meta")]
LogToken = Annotated[str, Query(max_length=MAX_TOKEN, description="the token a previous page gave")]
LogLines = Annotated[int, Query(ge=1, le=MAX_LINES, description="the most lines this page holds")]
MetricQueries = Annotated[str, Query(max_length=1000, description="metric names, comma-separated")]
AgentName = Annotated[str, Path(pattern=f"^{AGENT_NAME.pattern}$")]


def error_response(error: Exception) -> Response[str]:
    """The one mapping from our exceptions (and anything unexpected) to an HTTP response."""
    status = http_status_of(error)
    body: dict[str, Any] = {"code": type(error).__name__, "message": str(error)}
    if isinstance(error, InvalidRequest):
        body |= {"field": error.field, "message": error.problem}
    if status == 500:
        logger.exception("request failed")
        if not isinstance(error, ServerlessAgentsError):
            body["message"] = f"{type(error).__name__}: {error}"
    body["message"] = " ".join(str(body["message"]).split())  # one line, whatever the exception held
    return Response(status, "application/json", json.dumps({"error": body}))


def _validation_response(error: RequestValidationError) -> Response[str]:
    first = error.errors()[0] if error.errors() else {"loc": ["request"], "msg": "invalid"}
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("path", "body", "query"))
    return error_response(InvalidRequest(field or "request", str(first.get("msg", "invalid"))))


def _message(message: Message, status: int = 200) -> Response[str]:
    return Response(status, "application/json", json.dumps(wire.to_dict(message)))


class _Resolver(APIGatewayRestResolver):
    """Powertools' resolver, keeping the request it serves per thread.

    Powertools keeps it on a class (`BaseRouter.current_event = ...` in `resolve`), so two requests served at
    once in one process read each other's. On Lambda a container serves one request at a time; the local
    stack serves the api function's invocations at once, as Lambda would in as many containers (one
    resolver per thread: handlers/api.py), and this keeps each request to its thread."""

    def __init__(self) -> None:
        self._served = threading.local()
        super().__init__(enable_validation=True)

    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        return self._served.event  # type: ignore[no-any-return]

    @current_event.setter
    def current_event(self, event: BaseProxyEvent) -> None:
        self._served.event = event

    def resolve(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # type: ignore[override]
        self._served.event = self._to_proxy_event(event)
        return super().resolve(event, context)


def _resolver() -> APIGatewayRestResolver:
    app = _Resolver()
    app.exception_handler(RequestValidationError)(_validation_response)
    app.exception_handler(Exception)(error_response)
    app.not_found()(
        lambda _: error_response(RouteNotFound("no such route: see GET /v1/agents and /v1/tasks"))
    )
    return app


def create_api(service: Callable[[], TaskService]) -> APIGatewayRestResolver:
    """The api Lambda's routes; `service` is called per request so configuration is read lazily."""
    app = _resolver()

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
        return _message(service().create(request, deadline=deadline()), 201)

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
        return _message(service().create(request, flyte2_request, deadline=deadline()), 201)

    @app.get("/v1/tasks/<task_id>")
    def get_task(task_id: TaskId) -> Response[str]:
        return _message(service().get(check_task_id(task_id)))

    @app.delete("/v1/tasks/<task_id>")
    def delete_task(task_id: TaskId) -> Response[str]:
        service().delete(check_task_id(task_id))
        return _message(agent_pb2.DeleteTaskResponse())

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
        return _message(service().list_agents())

    return app


def create_sync_api(agent: Callable[[], SyncTarget]) -> APIGatewayRestResolver:
    """A sync agent's Lambda: `agent` returns the agent it serves (name, instance, time limit)."""
    from serverless_agents.runtime.sync import execute_sync

    app = _resolver()

    @app.post("/v1/sync/<name>")
    def run_sync(name: AgentName) -> Response[str]:
        target = agent()
        if name != target.name:
            raise AgentNotFound(f"no agent named {name!r} here (this function serves {target.name!r})")
        request = wire.from_json(agent_pb2.CreateTaskRequest, app.current_event.body)
        context = getattr(app, "lambda_context", None)
        time_left = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        return _message(execute_sync(target, request, time_left=time_left))

    return app
