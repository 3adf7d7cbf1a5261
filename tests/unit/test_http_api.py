"""The api Lambda's routes, driven with API Gateway proxy events against a fake TaskService."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from pydantic import ValidationError

from serverless_agents.api.http_api import create_api
from serverless_agents.deployment.manifest import AgentSettings
from serverless_agents.exceptions import (
    AgentNotFound,
    InvalidRequest,
    RetryableAgentError,
    ServiceUnavailable,
    TaskNotFound,
)
from serverless_agents.flyte import wire
from serverless_agents.local.apigateway import proxy_event
from serverless_agents.local.lambda_dispatch import LocalLambdaContext
from serverless_agents.testing import task_request

TASK_ID = "f6a2b9c-n0-a0-0123456789abcdef"
CREATED = agent_pb2.CreateTaskResponse(resource_meta=b'{"task_id":"t","agent":"job"}')
RUNNING = agent_pb2.GetTaskResponse(
    resource=agent_pb2.Resource(phase=execution_pb2.TaskExecution.RUNNING, message="poll 1 of 3")
)
AGENTS = agent_pb2.ListAgentsResponse(
    agents=[
        agent_pb2.Agent(name="job", supported_task_categories=[agent_pb2.TaskCategory(name="example_job")])
    ]
)


class FakeService:
    """Records what the API asked for; answers with canned messages, or raises `error` when set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.error: Exception | None = None
        self.deadlines: list[float | None] = []

    def _answer(self, verb: str, argument: Any, answer: Any) -> Any:
        self.calls.append((verb, argument))
        if self.error is not None:
            raise self.error
        return answer

    def create(
        self,
        request: agent_pb2.CreateTaskRequest,
        flyte2_request: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> agent_pb2.CreateTaskResponse:
        self.deadlines.append(deadline)
        return self._answer("create", request, CREATED)

    def get(self, task_id: str) -> agent_pb2.GetTaskResponse:
        return self._answer("get", task_id, RUNNING)

    def delete(self, task_id: str) -> None:
        return self._answer("delete", task_id, None)

    def list_agents(self) -> agent_pb2.ListAgentsResponse:
        return self._answer("list_agents", None, AGENTS)


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def app(service: FakeService) -> APIGatewayRestResolver:
    return create_api(lambda: service)  # type: ignore[arg-type, return-value]


def call(
    app: APIGatewayRestResolver,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {**({"Content-Type": "application/json"} if body else {}), **(headers or {})}
    context = LocalLambdaContext(
        function_name="api",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:api",
        memory_limit_in_mb=128,
        timeout_seconds=3,
    )
    response = app.resolve(proxy_event(method, path, headers, body, "127.0.0.1"), context)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_post_tasks_creates_the_parsed_request(app: APIGatewayRestResolver, service: FakeService) -> None:
    body = {"template": {"type": "example_job", "taskTypeVersion": 1}, "outputPrefix": "s3://b/out"}

    status, answer = call(app, "POST", "/v1/tasks", json.dumps(body).encode())

    assert status == 201
    assert answer == {"resourceMeta": "eyJ0YXNrX2lkIjoidCIsImFnZW50Ijoiam9iIn0="}
    [(verb, request)] = service.calls
    assert verb == "create"
    assert (request.template.type, request.template.task_type_version) == ("example_job", 1)
    assert request.output_prefix == "s3://b/out"


@pytest.mark.parametrize(
    ("waits", "deadline_after_receipt"), [("2500", 2.5), ("0", 0.0), ("soon", None), ("-5", None)]
)
def test_a_create_knows_when_its_client_stops_waiting(
    app: APIGatewayRestResolver, service: FakeService, waits: str, deadline_after_receipt: float | None
) -> None:
    """`X-Client-Timeout-Ms`, counted from API Gateway's receipt of the request; a malformed one: none."""
    body = {"template": {"type": "example_job"}, "outputPrefix": "s3://b/out"}

    status, _ = call(app, "POST", "/v1/tasks", json.dumps(body).encode(), {wire.CLIENT_TIMEOUT_HEADER: waits})

    assert status == 201
    [deadline] = service.deadlines
    if deadline_after_receipt is None:
        assert deadline is None
    else:
        assert deadline is not None
        assert deadline - deadline_after_receipt == pytest.approx(time.time(), abs=60)


def test_get_task_gets_it(app: APIGatewayRestResolver, service: FakeService) -> None:
    status, answer = call(app, "GET", f"/v1/tasks/{TASK_ID}")

    assert (status, answer) == (200, {"resource": {"phase": "RUNNING", "message": "poll 1 of 3"}})
    assert service.calls == [("get", TASK_ID)]


def test_delete_task_deletes_it(app: APIGatewayRestResolver, service: FakeService) -> None:
    assert call(app, "DELETE", f"/v1/tasks/{TASK_ID}") == (200, {})
    assert service.calls == [("delete", TASK_ID)]


def test_get_agents_lists_them(app: APIGatewayRestResolver, service: FakeService) -> None:
    status, answer = call(app, "GET", "/v1/agents")

    assert status == 200
    assert answer == {"agents": [{"name": "job", "supportedTaskCategories": [{"name": "example_job"}]}]}
    assert service.calls == [("list_agents", None)]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AgentNotFound("no agent is deployed for task type 'snowflake' version 0"), 404),
        (TaskNotFound(f"no task with id {TASK_ID!r}"), 404),
        (ServiceUnavailable("DynamoDB is throttling or unavailable: ThrottlingException"), 503),
        (RetryableAgentError("the platform is busy"), 503),
    ],
)
def test_service_errors_map_to_their_status(
    app: APIGatewayRestResolver, service: FakeService, error: Exception, status: int
) -> None:
    service.error = error

    assert call(app, "GET", f"/v1/tasks/{TASK_ID}") == (
        status,
        {"error": {"code": type(error).__name__, "message": str(error)}},
    )


def test_invalid_request_is_400_naming_the_field(app: APIGatewayRestResolver, service: FakeService) -> None:
    service.error = InvalidRequest("template.type", "no agent serves sync tasks here")

    status, answer = call(app, "POST", "/v1/tasks", b'{"template": {"type": "example_echo"}}')

    assert status == 400
    assert answer == {
        "error": {
            "code": "InvalidRequest",
            "field": "template.type",
            "message": "no agent serves sync tasks here",
        }
    }


def test_an_unexpected_error_is_500_with_one_line_and_no_traceback(
    app: APIGatewayRestResolver, service: FakeService
) -> None:
    service.error = RuntimeError("database exploded")

    status, answer = call(app, "GET", "/v1/agents")

    assert status == 500
    assert answer == {"error": {"code": "RuntimeError", "message": "RuntimeError: database exploded"}}


def test_an_unexpected_multi_line_error_is_still_one_line(
    app: APIGatewayRestResolver, service: FakeService
) -> None:
    try:  # a realistic unexpected error: pydantic's messages span several lines
        AgentSettings.model_validate({})
    except ValidationError as e:
        service.error = e

    status, answer = call(app, "GET", "/v1/agents")

    assert status == 500
    assert answer["error"]["message"].startswith("ValidationError: ")
    assert "\n" not in answer["error"]["message"]


@pytest.mark.parametrize("task_id", ["has%20space", "x" * 81, "a.b"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_bad_task_id_is_400_and_reaches_no_service(
    app: APIGatewayRestResolver, service: FakeService, method: str, task_id: str
) -> None:
    status, answer = call(app, method, f"/v1/tasks/{task_id}")

    assert status == 400
    assert answer["error"]["field"] == "task_id"
    assert service.calls == []


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[1, 2]", b'{"template": {"type": 5, "nope": 1}}'],
    ids=["empty", "bad", "list", "field"],
)
def test_a_body_that_is_no_create_request_is_400_and_reaches_no_service(
    app: APIGatewayRestResolver, service: FakeService, body: bytes
) -> None:
    status, answer = call(app, "POST", "/v1/tasks", body)

    assert status == 400
    assert answer["error"]["field"] == "body"
    assert service.calls == []


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nothing"), ("PUT", "/v1/agents"), ("GET", "/")])
def test_an_unknown_route_is_a_client_error(
    app: APIGatewayRestResolver, service: FakeService, method: str, path: str
) -> None:
    status, answer = call(app, method, path)

    assert status == 404
    assert answer["error"]["code"] == "RouteNotFound"
    assert service.calls == []


def test_a_create_whose_event_has_no_receipt_time_is_created_without_a_deadline(
    app: APIGatewayRestResolver, service: FakeService
) -> None:
    # Seen in the deploy rehearsal: an event without requestContext.requestTimeEpoch answered 500 (Powertools'
    # accessor raised KeyError). API Gateway stamps every request; the api must not depend on it to answer.
    event = proxy_event(
        "POST",
        "/v1/tasks",
        {"Content-Type": "application/json", wire.CLIENT_TIMEOUT_HEADER: "2500"},
        json.dumps({"template": {"type": "example_job"}, "outputPrefix": "s3://b/out"}).encode(),
        "127.0.0.1",
    )
    event["requestContext"].pop("requestTimeEpoch", None)
    context = LocalLambdaContext(
        function_name="api",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:api",
        memory_limit_in_mb=128,
        timeout_seconds=3,
    )

    assert app.resolve(event, context)["statusCode"] == 201
    assert service.deadlines == [None]


@pytest.fixture
def sync_app() -> APIGatewayRestResolver:
    from serverless_agents.api.sync_api import create_sync_api
    from serverless_agents.examples import EchoAgent
    from serverless_agents.runtime.sync import SyncTarget

    return create_sync_api(lambda: SyncTarget("echo", EchoAgent(config={}), 3.0))


@pytest.mark.parametrize("name", ["Echo", "a b", "x" * 200, "echo\n", "..", "é"])
def test_the_sync_route_refuses_a_name_no_agent_can_have_as_the_api_does(
    sync_app: APIGatewayRestResolver, name: str
) -> None:
    # Checked by the route itself (no Powertools validation in the sync function): a 400 naming the field.
    status, answer = call(sync_app, "POST", f"/v1/sync/{quote(name, safe='')}", b"{}")

    assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, "InvalidRequest", "name")


def test_the_sync_route_answers_only_for_its_own_agent(sync_app: APIGatewayRestResolver) -> None:
    request = task_request("example_echo", {"text": "ping"}, {"text": str})

    body = json.dumps(wire.to_dict(request)).encode()
    mine, other = call(sync_app, "POST", "/v1/sync/echo", body), call(sync_app, "POST", "/v1/sync/job", body)

    assert mine[0] == 200
    assert mine[1]["resource"]["outputs"]["literals"]["text"]["scalar"]["primitive"]["stringValue"] == "ping"
    assert (other[0], other[1]["error"]["code"]) == (404, "AgentNotFound")
