"""API Gateway, locally: a real HTTP server turning requests into REST API proxy events.

`POST /v1/sync/{agent}` goes to that agent's sync function, everything else to the api function, each
invoked through the (emulated) Lambda service, as API Gateway's Lambda proxy integration would.

What API Gateway answers itself, this answers the same way, always as JSON `{"message": ...}`: 413 over its
10 MB payload limit, 429 when Lambda throttles (passed to the client, not retried here), 502 when the function
fails or answers something that is not a proxy response. Where the local server must decide more than API
Gateway would (a body that is not UTF-8, a Content-Length that is not a number) it answers 400 rather than
dropping the connection.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from serverless_agents.naming import agent_function_name, shared_function_name

_SYNC_ROUTE = re.compile(r"^/v1/sync/(?P<agent>[^/]+)$")
_TASK_ROUTE = re.compile(r"^/v1/tasks/(?P<task_id>[^/]+)$")
_DIGITS = re.compile(r"[0-9]{1,20}")
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit (REST APIs), answered with a 413
_DRAIN_LIMIT = 64 * 1024 * 1024  # past this, a too-large body is not read at all: the connection closes
_IDLE_TIMEOUT = 30.0
_Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body


def proxy_event(
    method: str, raw_path: str, headers: dict[str, str], body: str | bytes, source_ip: str
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event, as API Gateway builds it."""
    url = urlsplit(raw_path)
    query = parse_qs(url.query)
    resource, path_parameters = url.path, None
    if match := _SYNC_ROUTE.match(url.path):
        resource, path_parameters = "/v1/sync/{agent}", match.groupdict()
    elif match := _TASK_ROUTE.match(url.path):
        resource, path_parameters = "/v1/tasks/{task_id}", match.groupdict()
    return {
        "resource": resource,
        "path": url.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/local{url.path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": source_ip},
        },
        "body": (body.decode() if isinstance(body, bytes) else body) or None,
        "isBase64Encoded": False,
    }


class LocalApiGateway:
    def __init__(self, lambda_client: Any, deployment: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lambda = _without_retries(lambda_client)
        self._deployment = deployment
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            # A client that announces a body and stalls would otherwise hold a thread forever; API
            # Gateway's own integration timeout is 29 s.
            timeout = _IDLE_TIMEOUT

            def do_GET(self) -> None:
                gateway._handle(self)

            do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # The standard library's errors (a bad request line, an unknown method, headers too
                # large) are HTML pages; API Gateway's are JSON, and clients parse them.
                self.close_connection = True
                _reply(self, *_gateway_error(code, message or _phrase(code)))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the function's own logs say what happened

        self._server = _Server((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _function_for(self, path: str) -> str:
        if match := _SYNC_ROUTE.match(urlsplit(path).path):
            return agent_function_name(self._deployment, match["agent"], "sync")
        return shared_function_name(self._deployment, "api")

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body, refused = _read_body(request)
        if refused is not None:
            _reply(request, *refused)
            return
        try:
            text = body.decode()
        except UnicodeDecodeError as e:
            _reply(request, *_gateway_error(400, f"the body is not UTF-8 text (byte {e.start})"))
            return
        event = proxy_event(
            request.command, request.path, dict(request.headers.items()), text, request.client_address[0]
        )
        _reply(request, *self._invoke(self._function_for(request.path), event))

    def _invoke(self, function_name: str, event: dict[str, Any]) -> _Answer:
        from botocore.exceptions import ClientError

        try:
            response = self._lambda.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
            answer = json.loads(response["Payload"].read() or b"null")
        except self._lambda.exceptions.ResourceNotFoundException:
            return _gateway_error(404, f"no function {function_name}: is the agent deployed?")
        except self._lambda.exceptions.TooManyRequestsException:
            return _gateway_error(429, "Too Many Requests")
        except (ClientError, ValueError):
            return _gateway_error(502, "Internal server error")
        if response.get("FunctionError") or not isinstance(answer, dict) or "statusCode" not in answer:
            return _gateway_error(502, "Internal server error")
        body = answer.get("body") or ""
        payload = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        return int(answer["statusCode"]), _response_headers(answer), payload


class _Server(ThreadingHTTPServer):
    # The standard library's listen backlog of 5 resets connections under a burst of concurrent clients.
    request_queue_size = 128


def _without_retries(lambda_client: Any) -> Any:
    """The same client, retrying nothing: API Gateway hands a throttled invoke back as a 429 to the client,
    which decides whether to retry; botocore's retries would hide it (and hold the connection meanwhile)."""
    import boto3
    from botocore.config import Config

    config = lambda_client.meta.config.merge(Config(retries={"total_max_attempts": 1}))
    return boto3.client("lambda", region_name=lambda_client.meta.region_name, config=config)


def _read_body(request: BaseHTTPRequestHandler) -> tuple[bytes, _Answer | None]:
    """The request's body, or the error API Gateway would answer instead of invoking anything."""
    declared = request.headers.get("Content-Length")
    if declared is None:
        return b"", None
    if not _DIGITS.fullmatch(declared.strip()):
        return b"", _gateway_error(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
    length = int(declared)
    if length <= MAX_PAYLOAD_BYTES:
        return request.rfile.read(length), None
    if length <= _DRAIN_LIMIT:
        # Read what the client sends anyway, so it gets to read the answer rather than a reset connection.
        for start in range(0, length, 1 << 20):
            request.rfile.read(min(1 << 20, length - start))
    request.close_connection = True
    message = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."
    return b"", _gateway_error(413, message)


def _response_headers(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """A proxy response's `headers` and `multiValueHeaders`, merged as API Gateway does (Powertools' resolver
    sets only the latter)."""
    single = [(str(k), str(v)) for k, v in (answer.get("headers") or {}).items()]
    multi = [(str(k), str(v)) for k, vs in (answer.get("multiValueHeaders") or {}).items() for v in vs or ()]
    return list(dict.fromkeys(single + multi))


def _reply(
    request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], payload: bytes
) -> None:
    request.send_response(status)
    for name, value in headers:
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(payload)))
    if request.close_connection:
        request.send_header("Connection", "close")
    request.end_headers()
    if request.command != "HEAD":  # a HEAD answer carries the headers of the body, never the body
        request.wfile.write(payload)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _gateway_error(status: int, message: str) -> _Answer:
    return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()
