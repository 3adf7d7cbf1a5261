"""`serverless-agents up` on a developer's machine, as a web page open in their browser would try it (#19,
findings 8 and 12): the emulated AWS endpoint and the local API answer only local pages and local Host
names (no CORS for other origins, no DNS rebinding), the local API takes no cross-site `text/plain` POST,
and every method gets a JSON 4xx, never a 501. Raw HTTP, so no client smooths anything over."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from serverless_agents.local.stack import LocalStack
from tests.functional.hostile import assert_nothing_written, holdings

pytestmark = pytest.mark.functional

SECRET = "local-only-secret-value"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifest = Path(tmp_path_factory.mktemp("insider-local")) / "agents.toml"
    manifest.write_text('[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n')
    with LocalStack(manifest, aws_port=0) as running:
        running.client("secretsmanager").create_secret(Name="team/token", SecretString=SECRET)
        yield running


def _send(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _read_secret(stack: LocalStack, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"SecretId": "team/token"}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.GetSecretValue",
        "Authorization": "AWS4-HMAC-SHA256 "
        "Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
        **headers,
    }
    return _send(stack.aws_url, "POST", "/", headers, body)


def test_the_emulator_answers_boto3_on_localhost(stack: LocalStack) -> None:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=stack.aws_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    assert client.get_secret_value(SecretId="team/token")["SecretString"] == SECRET


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://evil.example:8080", "null", "http://127.0.0.1.evil.example"]
)
def test_the_emulator_refuses_a_page_from_another_origin(stack: LocalStack, origin: str) -> None:
    status, headers, body = _read_secret(stack, {"Origin": origin})

    assert status == 403
    assert SECRET.encode() not in body
    assert "access-control-allow-origin" not in headers

    preflight, headers, _ = _send(
        stack.aws_url,
        "OPTIONS",
        "/",
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-amz-target",
        },
    )
    assert preflight == 403
    assert "access-control-allow-origin" not in headers


def test_the_emulator_still_serves_a_local_page(stack: LocalStack) -> None:
    port = urlsplit(stack.aws_url).port
    status, _, body = _read_secret(stack, {"Origin": f"http://localhost:{port + 1}"})

    assert status == 200
    assert SECRET.encode() in body


@pytest.mark.parametrize(
    "host", ["rebind.evil.example", "evil.example:{port}", "127.0.0.1:1", "10.0.0.1:{port}"]
)
def test_the_emulator_refuses_a_host_that_is_not_its_own(stack: LocalStack, host: str) -> None:
    port = urlsplit(stack.aws_url).port
    status, _, body = _read_secret(stack, {"Host": host.format(port=port)})

    assert status == 403
    assert SECRET.encode() not in body


def _api_invocations(stack: LocalStack) -> int:
    return int(stack.lambdas.invocations[f"{stack.deployment}-api"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "rebind.evil.example"},
        {"Host": "evil.example:{port}"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},
    ],
    ids=["host", "host-port", "origin", "origin-null", "text-plain", "form", "multipart", "no-type"],
)
def test_the_local_api_takes_no_cross_site_post(stack: LocalStack, headers: dict[str, str]) -> None:
    port = urlsplit(stack.api_url).port
    headers = {k: v.format(port=port) for k, v in headers.items()}
    before, invocations = holdings(stack), _api_invocations(stack)
    body = json.dumps({"template": {"type": "example_job"}}).encode()

    status, answer_headers, data = _send(stack.api_url, "POST", "/v1/tasks", headers, body)

    assert status in (403, 415)
    assert answer_headers["content-type"] == "application/json"
    assert json.loads(data)["message"]
    assert _api_invocations(stack) == invocations
    assert_nothing_written(before, holdings(stack), set())


def test_the_local_api_still_takes_json_from_localhost(stack: LocalStack) -> None:
    port = urlsplit(stack.api_url).port
    status, _, _ = _send(
        stack.api_url,
        "GET",
        "/v1/agents",
        {"Host": f"localhost:{port}", "Origin": f"http://127.0.0.1:{port}"},
    )

    assert status == 200


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW", "M-SEARCH", "get"])
def test_any_method_gets_a_json_4xx_never_a_501(stack: LocalStack, method: str) -> None:
    invocations = _api_invocations(stack)
    target = "127.0.0.1:443" if method == "CONNECT" else "/v1/agents"

    status, headers, data = _send(stack.api_url, method, target, {})

    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    assert json.loads(data) == {"message": "Missing Authentication Token"}
    assert _api_invocations(stack) == invocations
