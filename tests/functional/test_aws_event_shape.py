"""AWS's own API Gateway events (tests/events/apigateway_rest_*.json, see its README) replayed into the api
and sync handlers, and the local gateway's event for the same request held against them: same resource,
same path parameters, same keys and shapes. The handlers must answer what AWS sends, not only what the
local gateway sends."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from serverless_agents.local.apigateway import RestApi, api_routes
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional

EVENTS = Path(__file__).resolve().parents[1] / "events"
#: The functional stack's (tests/functional/conftest.py MANIFEST) only sync agent.
ROUTES = RestApi(api_routes(["echo"]))
#: What API Gateway sets itself: the client's values (if any) are not what the function sees.
GATEWAY_HEADERS = {"Host", "X-Amzn-Trace-Id", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"}
#: Filled by AWS_IAM authorization from the verified SigV4 signature; the local gateway verifies none.
SIGNER_FIELDS = {"accessKey", "accountId", "caller", "user", "userArn"}


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / f"apigateway_rest_{name}.json").read_text()))


def invoke(harness: Harness, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The event into the function the deployed API routes it to, as the proxy integration invokes it."""
    route, _ = ROUTES.resolve(event["httpMethod"], event["path"])
    response = harness.stack.client("lambda").invoke(
        FunctionName=route.function_name(harness.stack.deployment), Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response
    answer = json.loads(response["Payload"].read())
    return answer["statusCode"], json.loads(answer["body"])


@pytest.mark.parametrize("name", ["list_agents", "get_task", "sync_echo", "sync_undeployed"])
def test_the_local_routes_resolve_aws_events_to_their_resource(name: str) -> None:
    event = sample(name)

    route, parameters = ROUTES.resolve(event["httpMethod"], event["path"])

    assert (route.resource, parameters) == (event["resource"], event["pathParameters"])


def test_the_api_handler_lists_agents_for_aws_event(harness: Harness) -> None:
    status, body = invoke(harness, sample("list_agents"))

    assert status == 200
    assert {agent["name"] for agent in body["agents"]} >= {"job", "echo"}


def test_the_api_handler_describes_a_task_for_aws_event(harness: Harness) -> None:
    task_id = harness.submit(harness.request())
    harness.wait(task_id)
    event = sample("get_task")  # the recorded request, for this task
    event["path"] = f"/v1/tasks/{task_id}"
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}/v1/tasks/{task_id}"
    event["pathParameters"] = {"task_id": task_id}

    status, body = invoke(harness, event)

    assert status == 200
    assert body["resource"]["phase"] == "SUCCEEDED"


def test_the_api_handler_does_not_find_the_recorded_task(harness: Harness) -> None:
    status, body = invoke(harness, sample("get_task"))

    assert status == 404
    assert body["error"]["code"] == "TaskNotFound"


def test_the_sync_handler_runs_aws_event_without_path_parameters(harness: Harness) -> None:
    event = sample("sync_echo")
    assert event["pathParameters"] is None  # an explicit resource: AWS sends no {agent}

    status, body = invoke(harness, event)

    assert status == 200
    assert body["resource"]["phase"] == "SUCCEEDED"
    assert body["resource"]["outputs"]["literals"]["text"]["scalar"]["primitive"] == {"stringValue": "ping"}


def test_an_undeployed_sync_agent_is_the_api_functions_404(harness: Harness) -> None:
    status, body = invoke(harness, sample("sync_undeployed"))

    assert status == 404
    assert body["error"]["code"] == "RouteNotFound"


@pytest.fixture
def received(harness: Harness) -> Iterator[list[dict[str, Any]]]:
    """The events the api and echo sync functions receive while the test runs."""
    events: list[dict[str, Any]] = []
    functions = [f"{harness.stack.deployment}-api", harness.function("echo", "sync")]
    for function in functions:
        harness.stack.lambdas.before_invoke[function] = events.append
    yield events
    for function in functions:
        del harness.stack.lambdas.before_invoke[function]


def send_like(harness: Harness, event: dict[str, Any]) -> int:
    """The request the sample records, over HTTP to the local gateway: the client's headers (repeated ones
    repeated), query and body; the status it answers."""
    url = urlsplit(harness.stack.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        query = urlencode(event["multiValueQueryStringParameters"] or {}, doseq=True)
        target = event["path"] + (f"?{query}" if query else "")
        conn.putrequest(event["httpMethod"], target, skip_accept_encoding=True)
        for name, values in event["multiValueHeaders"].items():
            if name not in GATEWAY_HEADERS:
                for value in values:
                    conn.putheader(name, value)
        body = (event["body"] or "").encode()
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


@pytest.mark.parametrize("name", ["list_agents", "sync_echo", "sync_undeployed"])
def test_the_local_gateway_sends_the_shape_aws_sends(
    harness: Harness, received: list[dict[str, Any]], name: str
) -> None:
    aws = sample(name)

    send_like(harness, aws)

    (local,) = received
    assert local.keys() == aws.keys()
    for key in ("resource", "path", "httpMethod", "pathParameters", "stageVariables", "isBase64Encoded"):
        assert local[key] == aws[key], key
    assert local["body"] == aws["body"]
    assert (local["queryStringParameters"], local["multiValueQueryStringParameters"]) == (
        aws["queryStringParameters"],
        aws["multiValueQueryStringParameters"],
    )
    assert local["headers"].keys() == aws["headers"].keys()
    assert local["multiValueHeaders"].keys() == aws["multiValueHeaders"].keys()
    for header in aws["headers"].keys() - GATEWAY_HEADERS:
        assert local["headers"][header] == aws["headers"][header], header
        assert local["multiValueHeaders"][header] == aws["multiValueHeaders"][header], header
    assert shape(local["headers"]) == shape(aws["headers"])
    assert shape(local["multiValueHeaders"]) == shape(aws["multiValueHeaders"])

    context, aws_context = local["requestContext"], aws["requestContext"]
    assert context.keys() == aws_context.keys()
    assert (context["resourcePath"], context["httpMethod"]) == (aws["resource"], aws["httpMethod"])
    assert context["path"] == f"/{context['stage']}{aws['path']}"
    assert context["identity"].keys() == aws_context["identity"].keys()
    assert {k for k, v in context["identity"].items() if v is None} == SIGNER_FIELDS | {
        k for k, v in aws_context["identity"].items() if v is None
    }
    without_identity = {k: v for k, v in context.items() if k != "identity"}
    assert shape(without_identity) == shape({k: v for k, v in aws_context.items() if k != "identity"})


def test_the_local_gateway_answers_what_the_function_answers_aws(
    harness: Harness, received: list[dict[str, Any]]
) -> None:
    """The same request, local or recorded from AWS, gets the same answer."""
    aws = sample("sync_echo")

    status = send_like(harness, aws)

    (local,) = received
    assert invoke(harness, local) == invoke(harness, aws)
    assert status == 200


def raw_request(harness: Harness, method: str, target: str, headers: dict[str, str]) -> int:
    url = urlsplit(harness.stack.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    try:
        conn.request(method, target, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_a_client_cannot_pose_as_another_source(harness: Harness, received: list[dict[str, Any]]) -> None:
    # Only the header names an address; no connection goes anywhere but the local gateway.
    raw_request(harness, "GET", "/v1/agents", {"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"})

    (event,) = received
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"  # API Gateway appends, too
    assert event["multiValueHeaders"]["X-Forwarded-Proto"] == ["http"]


def test_an_undeployed_sync_agent_reaches_the_api_function(
    harness: Harness, received: list[dict[str, Any]]
) -> None:
    api = f"{harness.stack.deployment}-api"
    before = harness.stack.lambdas.invocations[api]

    status = raw_request(harness, "POST", "/v1/sync/nope", {"Content-Type": "application/json"})

    (event,) = received
    assert (event["resource"], event["pathParameters"]) == ("/v1/sync/{agent}", {"agent": "nope"})
    assert harness.stack.lambdas.invocations[api] == before + 1
    assert status == 404


@pytest.mark.parametrize(
    ("target", "path", "proxy"),
    [
        ("/v1/nothing", "/v1/nothing", "v1/nothing"),
        ("/v1/tasks/a%2Fb/c", "/v1/tasks/a%2Fb/c", "v1/tasks/a/b/c"),
        ("/v1/sync/echo", "/v1/sync/echo", "v1/sync/echo"),  # the resource has no GET
    ],
)
def test_what_no_method_matches_goes_to_the_api_function_as_a_proxy_resource(
    harness: Harness, received: list[dict[str, Any]], target: str, path: str, proxy: str
) -> None:
    status = raw_request(harness, "GET", target, {})

    (event,) = received
    assert event["resource"] == event["requestContext"]["resourcePath"] == "/{proxy+}"
    assert (event["path"], event["pathParameters"]) == (path, {"proxy": proxy})
    assert status in (404, 405)


def test_a_trailing_slash_reaches_the_resource_and_stays_in_the_path(
    harness: Harness, received: list[dict[str, Any]]
) -> None:
    status = raw_request(harness, "GET", "/v1/agents/", {})

    (event,) = received
    assert (event["resource"], event["path"], event["pathParameters"]) == ("/v1/agents", "/v1/agents/", None)
    assert status == 200
