"""API Gateway, locally: a real HTTP server turning requests into REST API proxy events.

`POST /v1/sync/{agent}` goes to that agent's sync function, everything else to the api function, each
invoked through the (emulated) Lambda service, as API Gateway's Lambda proxy integration would.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from serverless_agents.naming import agent_function_name, shared_function_name

_SYNC_ROUTE = re.compile(r"^/v1/sync/(?P<agent>[^/]+)$")
_TASK_ROUTE = re.compile(r"^/v1/tasks/(?P<task_id>[^/]+)$")


def proxy_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str
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
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


class LocalApiGateway:
    def __init__(self, lambda_client: Any, deployment: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lambda = lambda_client
        self._deployment = deployment
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway._handle(self)

            do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

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
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        event = proxy_event(
            request.command, request.path, dict(request.headers.items()), body, request.client_address[0]
        )
        status, headers, payload = self._invoke(self._function_for(request.path), event)
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _invoke(self, function_name: str, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        try:
            response = self._lambda.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        except self._lambda.exceptions.ResourceNotFoundException:
            return _gateway_error(404, f"no function {function_name}: is the agent deployed?")
        except self._lambda.exceptions.TooManyRequestsException:
            return _gateway_error(429, "Too Many Requests")
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError") or not isinstance(answer, dict) or "statusCode" not in answer:
            return _gateway_error(502, "Internal server error")
        body = answer.get("body") or ""
        payload = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        return (
            int(answer["statusCode"]),
            {str(k): str(v) for k, v in (answer.get("headers") or {}).items()},
            payload,
        )


class _Server(ThreadingHTTPServer):
    # The standard library's listen backlog of 5 resets connections under a burst of concurrent clients.
    request_queue_size = 128


def _gateway_error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
