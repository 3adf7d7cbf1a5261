"""The local API Gateway answers the way API Gateway does: JSON errors for everything it refuses itself
(413 over the 10 MB payload limit, a Lambda throttle as 429, passed through rather than retried), and a 400
instead of a dropped connection for bodies and headers it cannot read. Raw HTTP, so nothing is smoothed over
by a client library."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_agents.exceptions import InvalidRequest, ServiceUnavailable
from serverless_agents.local.apigateway import MAX_PAYLOAD_BYTES, RestApi, api_routes, proxy_event
from tests.functional.conftest import Harness
from tests.functional.hostile import assert_nothing_written, holdings

pytestmark = pytest.mark.functional


@pytest.fixture
def connection(harness: Harness) -> Iterator[http.client.HTTPConnection]:
    url = urlsplit(harness.stack.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
    yield conn
    conn.close()


def _answer(conn: http.client.HTTPConnection) -> tuple[int, dict[str, Any], str]:
    response = conn.getresponse()
    data = response.read()
    assert response.getheader("Content-Type") == "application/json"
    return response.status, dict(json.loads(data)) if data else {}, response.getheader("Content-Length") or ""


def test_a_body_that_is_not_utf8_is_a_400(harness: Harness, connection: http.client.HTTPConnection) -> None:
    before = holdings(harness.stack)
    connection.request(
        "POST", "/v1/tasks", body=b'{"template": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    )

    status, body, _ = _answer(connection)

    assert status == 400
    assert "UTF-8" in body["message"]
    assert_nothing_written(before, holdings(harness.stack), set())


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "+7", "1_0", " ", "99999999999999999999999"])
def test_a_content_length_that_is_not_a_number_is_a_400(harness: Harness, length: str) -> None:
    url = urlsplit(harness.stack.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(f"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        answer = sock.makefile("rb").read()

    head, _, data = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400") or head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert "Content-Length" in json.loads(data)["message"]


def test_over_10_mb_is_a_413_and_reaches_no_function(
    harness: Harness, connection: http.client.HTTPConnection
) -> None:
    before, invocations = holdings(harness.stack), dict(harness.stack.lambdas.invocations)
    connection.request("POST", "/v1/tasks", body=b"x" * (MAX_PAYLOAD_BYTES + 1))

    status, body, _ = _answer(connection)

    assert status == 413
    assert str(MAX_PAYLOAD_BYTES) in body["message"]
    assert dict(harness.stack.lambdas.invocations) == invocations
    assert_nothing_written(before, holdings(harness.stack), set())


def test_the_client_names_a_413_as_bad_input(harness: Harness) -> None:
    request = harness.request(inputs={"n": 1, "blob": "x" * (MAX_PAYLOAD_BYTES + 1)}, outputs={"n": int})

    with pytest.raises(InvalidRequest, match="10485760"):
        harness.api.create_task(request)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "PATCH"])
def test_every_method_gets_json(connection: http.client.HTTPConnection, method: str) -> None:
    connection.request(method, "/v1/agents")

    status, body, length = _answer(connection)

    assert status in (403, 404, 405)
    if method == "HEAD":
        assert body == {}  # a HEAD answer has the headers of the body, never the body
        assert int(length) > 0
    else:
        assert body["error"]["message"]


def test_a_method_no_rest_api_has_is_api_gateways_403(connection: http.client.HTTPConnection) -> None:
    connection.request("BREW", "/v1/agents")

    status, body, _ = _answer(connection)

    assert status == 403  # API Gateway's answer to a method no resource has; never the stdlib's 501
    assert body == {"message": "Missing Authentication Token"}


def test_a_lambda_throttle_reaches_the_client_as_429_once(
    harness: Harness, connection: http.client.HTTPConnection
) -> None:
    function = f"{harness.stack.deployment}-api"
    before = harness.stack.lambdas.invocations[function]
    harness.stack.lambdas.inject_fault(function, "throttle")

    connection.request("GET", "/v1/agents")
    status, body, _ = _answer(connection)

    assert status == 429
    assert body == {"message": "Too Many Requests"}
    assert harness.stack.lambdas.invocations[function] == before + 1  # tried once, not retried


def test_the_client_makes_a_429_it_has_no_time_to_try_again_unavailable(harness: Harness) -> None:
    harness.stack.lambdas.inject_fault(f"{harness.stack.deployment}-api", "throttle")

    with pytest.raises(ServiceUnavailable, match="429"):
        harness.api.list_agents(timeout=0.2)  # too short to pause and try again


API = RestApi(api_routes(["echo", "etl-nightly"]))


@pytest.mark.parametrize(
    ("method", "path", "resource", "parameters"),
    [
        ("POST", "/v1/sync/echo", "/v1/sync/echo", None),  # AWS sends no {agent} for an explicit resource
        ("POST", "/v1/sync/etl-nightly", "/v1/sync/etl-nightly", None),
        ("POST", "/v1/sync/other", "/v1/sync/{agent}", {"agent": "other"}),
        ("GET", "/v1/tasks/a%20b", "/v1/tasks/{task_id}", {"task_id": "a b"}),  # values decoded
        ("DELETE", "/v1/tasks/t-1", "/v1/tasks/{task_id}", {"task_id": "t-1"}),
        ("POST", "/v1/tasks", "/v1/tasks", None),
        ("GET", "/v1/agents", "/v1/agents", None),
        # The explicit resource has no GET, and API Gateway never falls back to {agent}.
        ("GET", "/v1/sync/echo", "/{proxy+}", {"proxy": "v1/sync/echo"}),
        ("GET", "/v1/agents/", "/v1/agents", None),  # a trailing slash reaches the resource
        ("POST", "/v1/sync/echo/", "/v1/sync/echo", None),
        ("GET", "/v1/tasks/", "/{proxy+}", {"proxy": "v1/tasks/"}),  # /v1/tasks has no GET
        ("GET", "/v1/agents//", "/{proxy+}", {"proxy": "v1/agents//"}),
        ("GET", "/v1", "/{proxy+}", {"proxy": "v1"}),
        ("GET", "/", "/{proxy+}", {"proxy": ""}),
    ],
)
def test_a_request_resolves_to_the_resource_api_gateway_picks(
    method: str, path: str, resource: str, parameters: dict[str, str] | None
) -> None:
    route, found = API.resolve(method, path)

    assert (route.resource, found) == (resource, parameters)


def test_each_route_invokes_its_function() -> None:
    functions = {(r.method, r.resource): r.function_name("d") for r in API.routes}

    assert functions[("POST", "/v1/sync/echo")] == "d-echo-sync"
    assert functions[("POST", "/v1/sync/{agent}")] == "d-api"
    assert {f for (_, resource), f in functions.items() if not resource.startswith("/v1/sync/")} == {"d-api"}


_SEGMENTS = st.one_of(
    st.sampled_from(["v1", "sync", "tasks", "agents", "echo", "etl-nightly", "{agent}", "", "%2F", "%", "é"]),
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=8),
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD"]), st.lists(_SEGMENTS, max_size=5))
def test_resolution_matches_the_path_and_prefers_literal_parts(method: str, parts: list[str]) -> None:
    path = "/" + "/".join(parts)

    route, parameters = API.resolve(method, path)

    if route.resource == "/{proxy+}":
        assert parameters == {"proxy": unquote(path[1:])}
        assert all(r.method != method or _fits(r.resource, parts) is None for r in API.routes)
        return
    assert route.method == method
    assert _fits(route.resource, parts) == (parameters or {})
    literal = [r for r in API.routes if "{" not in r.resource and r.resource == path]
    assert not literal or route.resource == path


def _fits(resource: str, parts: list[str]) -> dict[str, str] | None:
    """What a resource's parameters take from a path, independently of the gateway's own matching."""
    template = resource.split("/")[1:]
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    if len(template) != len(parts):
        return None
    taken = {t[1:-1]: unquote(p) for t, p in zip(template, parts, strict=True) if t.startswith("{") and p}
    literal_ok = all(t == p for t, p in zip(template, parts, strict=True) if not t.startswith("{"))
    filled = all(p for t, p in zip(template, parts, strict=True) if t.startswith("{"))
    return taken if literal_ok and filled else None


def test_a_request_target_is_a_path_even_when_it_looks_like_a_host() -> None:
    event = proxy_event("GET", "//x/v1/agents?a=1", {}, b"", "127.0.0.1", api=API)

    assert (event["path"], event["resource"]) == ("//x/v1/agents", "/{proxy+}")
    assert event["queryStringParameters"] == {"a": "1"}


def test_an_absolute_form_target_is_parsed_as_a_url() -> None:
    event = proxy_event("GET", "http://127.0.0.1/v1/agents?a=1&a=", {}, b"", "127.0.0.1", api=API)

    assert (event["path"], event["resource"]) == ("/v1/agents", "/v1/agents")
    assert (event["queryStringParameters"], event["multiValueQueryStringParameters"]) == (
        {"a": ""},  # the last value, even an empty one
        {"a": ["1", ""]},
    )
