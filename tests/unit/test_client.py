"""The HTTP API client: SigV4 for API Gateway hosts only, and errors rebuilt as the project's exceptions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session
import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.api.client import ApiClient, ApiError, ResponseTimeout, SigV4Signer
from serverless_agents.exceptions import AgentNotFound, InvalidRequest, ServiceUnavailable, TaskNotFound


class Recorder:
    """A local HTTP server answering each request with the next canned (status, body) and recording it."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status, body = recorder.answers.pop(0)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.server.shutdown()


def test_local_urls_are_not_signed(api: Recorder) -> None:
    api.answers.append((200, {"agents": []}))

    ApiClient(api.url).list_agents()

    assert ApiClient(api.url).signer is None
    assert "Authorization" not in api.requests[0]["headers"]


def test_execute_api_hosts_are_signed_for_their_region() -> None:
    client = ApiClient("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")

    assert client.signer is not None
    assert client.signer.region == "eu-west-1"


def test_sigv4_headers_scope_execute_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    signer = SigV4Signer("us-east-1", session=botocore.session.Session())

    headers = signer.headers(
        "GET", "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/agents", None, {}
    )

    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (
            400,
            {"error": {"code": "InvalidRequest", "message": "required", "field": "template"}},
            InvalidRequest,
            "template",
        ),
        (404, {"error": {"code": "TaskNotFound", "message": "no task with id 'x'"}}, TaskNotFound, "no task"),
        (404, {"error": {"code": "AgentNotFound", "message": "no agent"}}, AgentNotFound, "no agent"),
        (
            503,
            {"error": {"code": "ServiceUnavailable", "message": "throttled"}},
            ServiceUnavailable,
            "throttled",
        ),
        (502, {"message": "Internal server error"}, ServiceUnavailable, "502"),
        (403, {"message": "Missing Authentication Token"}, ApiError, "credentials"),
        (500, b"<html>oops</html>", ApiError, "oops"),
    ],
)
def test_errors_come_back_as_the_projects_exceptions(
    api: Recorder, status: int, body: Any, error: type[Exception], text: str
) -> None:
    api.answers.append((status, body))

    with pytest.raises(error, match=text):
        ApiClient(api.url).get_task("x")


def test_an_unreachable_api_is_unavailable() -> None:
    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        ApiClient("http://127.0.0.1:9", timeout=1).list_agents()


@pytest.mark.parametrize(
    ("status", "body", "field"),
    [
        # API Gateway's own answers (a 414 comes from its front end as an HTML page).
        (
            414,
            b"<html>\n<head><title>414 Request-URI Too Large</title></head>\n<body>...</body>\n</html>",
            "request",
        ),
        (413, {"message": "HTTP content length exceeded 10485760 bytes."}, "request"),
        (400, b"Bad Request\r\n", "request"),
        (
            400,
            {"error": {"code": "InvalidRequest", "message": "bad\nvalue", "field": "inputs.x"}},
            "inputs.x",
        ),
    ],
)
def test_4xx_without_our_error_body_is_invalid_request_in_one_line(
    api: Recorder, status: int, body: Any, field: str
) -> None:
    api.answers.append((status, body))

    with pytest.raises(InvalidRequest) as error:
        ApiClient(api.url).get_task("x")

    assert error.value.field == field
    assert "\n" not in str(error.value)
    assert "<" not in str(error.value)


def test_an_html_error_page_is_summarized_not_relayed(api: Recorder) -> None:
    api.answers.append((500, b"<html><body>" + b"<p>trace</p>\n" * 5000 + b"</body></html>"))

    with pytest.raises(ApiError) as error:
        ApiClient(api.url).get_task("x")

    assert "\n" not in str(error.value)
    assert len(str(error.value)) < 400


def test_connection_refused_is_named() -> None:
    import socket

    with socket.socket() as sock:  # free a moment ago; nothing listens on it now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(ServiceUnavailable, match="connection refused"):
        ApiClient(f"http://127.0.0.1:{port}", timeout=5).list_agents()


def test_a_silent_api_is_named_as_not_answering() -> None:
    import socket

    with socket.socket() as sock:  # accepts connections (the backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]

        # Not UNAVAILABLE: the API may be working on it; the call ran out of time (DEADLINE_EXCEEDED).
        with pytest.raises(ResponseTimeout, match=r"did not answer within 0\.2 s"):
            ApiClient(f"http://127.0.0.1:{port}", timeout=0.2).list_agents()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda client: client.get_task("../agents"), "task_id"),
        (lambda client: client.delete_task("t1?all=1"), "task_id"),
        (lambda client: client.execute_sync("../tasks", agent_pb2.CreateTaskRequest()), "agent"),
    ],
)
def test_ids_are_checked_before_a_request_is_sent(api: Recorder, call: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        call(ApiClient(api.url))

    assert error.value.field == field
    assert api.requests == []
