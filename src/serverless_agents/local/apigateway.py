"""API Gateway, locally: a real HTTP server turning requests into REST API proxy events.

The deployed API's routes, one table (`api_routes`, checked against the synthesized template by
tests/infra/test_api.py):

    POST   /v1/tasks, GET|DELETE /v1/tasks/{task_id}, GET /v1/agents   -> the api function
    GET    /v1/tasks/{task_id}/logs, GET /v1/tasks/{task_id}/metrics    -> the api function
    POST   /v1/flyte2/tasks                                           -> the api function
    POST   /v1/sync/<agent>   one resource per sync agent              -> that agent's sync function
    POST   /v1/sync/{agent}   any other name                           -> the api function (its 404)

A request resolves to a resource as API Gateway resolves it (a literal path part wins over a `{param}`),
and the event is the one Lambda proxy integration sends for that resource: `resource` is the resource's
path, `pathParameters` null where it has none (so `/v1/sync/echo` arrives as `resource=/v1/sync/echo`,
`pathParameters: null`), `path` as the client sent it and the parameters' values decoded, the last value of
a repeated header or query parameter in the single-value maps and all of them in the multi-value ones, null
maps where there is nothing, `body` null when empty, `requestContext` with the stage's path. AWS's own
sample events (tests/events/apigateway_rest_*.json) check the shape.

One deliberate difference: a request no method of the API matches would get API Gateway's own 403
(`Missing Authentication Token`) and reach no function. Locally it goes to the api function as through an
`ANY /{proxy+}` resource, so a developer's typo reads as the API's 404 naming the routes.

What API Gateway answers itself, this answers the same way, always as JSON `{"message": ...}`: 413 over its
10 MB payload limit, 429 when Lambda throttles (passed to the client, not retried here), 502 when the function
fails or answers something that is not a proxy response, 403 `Missing Authentication Token` for a method no
REST API can have (TRACE, CONNECT, PROPFIND, any made-up one: API Gateway knows only GET, POST, PUT, PATCH,
DELETE, HEAD and OPTIONS). Where the local server must decide more than API Gateway would (a body that is
not UTF-8, a Content-Length that is not a number) it answers 400 rather than dropping the connection.

It listens on the developer's machine, where any web page can send it requests, so before invoking
anything it also refuses what API Gateway needs no rule for (`loopback.LocalPeers`): a `Host` that is not
this server's loopback name and port (403, DNS rebinding), an `Origin` that is not a local page (403), and
a POST body that is not declared `application/json` (415: a cross-site form or `text/plain` POST needs no
CORS preflight, JSON does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from serverless_agents.deployment.naming import LOCAL_ACCOUNT, agent_function_name, shared_function_name
from serverless_agents.exceptions import cannot_listen
from serverless_agents.local.loopback import LocalPeers

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

_DIGITS = re.compile(r"[0-9]{1,20}")
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit (REST APIs), answered with a 413
_DRAIN_LIMIT = 64 * 1024 * 1024  # past this, a too-large body is not read at all: the connection closes
_IDLE_TIMEOUT = 30.0
#: The methods a REST API's resource can have; any other gets API Gateway's 403 and reaches no function.
API_GATEWAY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_MISSING_TOKEN = "Missing Authentication Token"
#: A JSON media type (`application/json`, `application/problem+json`), parameters such as charset aside.
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
_Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body
_Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Route:
    """A method of the REST API: its resource path (`{name}` for a path parameter) and what it invokes."""

    method: str
    resource: str
    sync_agent: str | None = None  # None: the api function

    def function_name(self, deployment: str) -> str:
        if self.sync_agent is None:
            return shared_function_name(deployment, "api")
        return agent_function_name(deployment, self.sync_agent, "sync")


def api_routes(sync_agents: Iterable[str]) -> tuple[Route, ...]:
    """The deployed API's methods: infra/cdk's `AgentsApi` declares these, and the local gateway serves
    them (the one list both read)."""
    return (
        Route("POST", "/v1/tasks"),
        Route("POST", "/v1/flyte2/tasks"),
        Route("GET", "/v1/tasks/{task_id}"),
        Route("DELETE", "/v1/tasks/{task_id}"),
        Route("GET", "/v1/tasks/{task_id}/logs"),
        Route("GET", "/v1/tasks/{task_id}/metrics"),
        Route("GET", "/v1/agents"),
        Route("POST", "/v1/sync/{agent}"),
        *(Route("POST", f"/v1/sync/{name}", name) for name in sync_agents),
    )


#: Where a request no method matches goes locally (API Gateway would answer 403 and invoke nothing).
UNROUTED = Route("ANY", "/{proxy+}")


@dataclass(frozen=True)
class RestApi:
    """What of the deployed REST API shows in its events: its methods, account, id and stage."""

    routes: tuple[Route, ...] = field(default_factory=lambda: api_routes(()))
    account: str = LOCAL_ACCOUNT
    api_id: str = "local"
    stage: str = "local"
    domain: str = "127.0.0.1"

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str] | None]:
        """The method a request reaches and its path parameters (None when the resource has none).

        API Gateway picks the resource first, a literal path part winning over a `{param}` at each level,
        then the method on that resource; it never falls back to a less specific resource. A trailing slash
        reaches the resource without it (the event's `path` keeps it)."""
        parts = (path[:-1] if path.endswith("/") and path != "/" else path).split("/")[1:]
        matched = [
            (tuple(p.startswith("{") for p in route.resource.split("/")[1:]), route.resource, parameters)
            for route in self.routes
            if (parameters := _match(route.resource, parts)) is not None
        ]
        if matched:
            _, resource, parameters = min(matched, key=lambda m: m[0])
            for route in self.routes:
                if (route.resource, route.method) == (resource, method):
                    return route, parameters or None
        return UNROUTED, {"proxy": unquote(path[1:])}


def _match(resource: str, parts: list[str]) -> dict[str, str] | None:
    template = resource.split("/")[1:]
    if len(template) != len(parts):
        return None
    parameters: dict[str, str] = {}
    for expected, part in zip(template, parts, strict=True):
        if expected.startswith("{") and part:
            parameters[expected[1:-1]] = unquote(part)
        elif expected != part:
            return None
    return parameters


def proxy_event(
    method: str,
    raw_path: str,
    headers: _Headers,
    body: str | bytes,
    source_ip: str,
    *,
    api: RestApi | None = None,
    protocol: str = "HTTP/1.1",
    server_port: int = 443,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event API Gateway sends for this request."""
    api = api or RestApi()
    path, query_string = _target(raw_path)
    route, path_parameters = api.resolve(method, path)
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    header_list = _forwarded(pairs, source_ip, server_port)
    query = parse_qsl(query_string, keep_blank_values=True)
    now = time.time()
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(header_list),
        "multiValueHeaders": _multi(header_list),
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": _multi(query) or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": api.account,
            "apiId": api.api_id,
            "domainName": api.domain,
            "domainPrefix": api.domain.split(".")[0],
            "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode(),
            "httpMethod": method,
            # The local gateway checks no SigV4 signature, so it names no caller.
            "identity": dict.fromkeys(_IDENTITY_FIELDS)
            | {
                "sourceIp": source_ip,
                "userAgent": next((v for k, v in reversed(header_list) if k.lower() == "user-agent"), None),
            },
            "path": f"/{api.stage}{path}",
            "protocol": protocol,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": hashlib.sha256(route.resource.encode()).hexdigest()[:6],  # stable, as AWS's ids
            "resourcePath": route.resource,
            "stage": api.stage,
        },
        "body": (body.decode() if isinstance(body, bytes) else body) or None,
        "isBase64Encoded": False,  # the API declares no binary media types
    }


def _target(raw: str) -> tuple[str, str]:
    """A request target's path, as sent, and its query. Only an absolute-form target (`http://host/...`)
    is parsed as a URL: `//x/v1/agents` is a path, not a host `x`."""
    if not raw.startswith("/"):
        url = urlsplit(raw)
        return url.path or "/", url.query
    path, _, query = raw.partition("?")
    return path, query


_IDENTITY_FIELDS = (
    "accessKey",
    "accountId",
    "caller",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
    "user",
    "userArn",
)


def _forwarded(headers: list[tuple[str, str]], source_ip: str, port: int) -> list[tuple[str, str]]:
    """The headers as API Gateway passes them: without Content-Length (the proxy integration drops it),
    with its own: the client's address appended to X-Forwarded-For (a client's own value stays in front
    of it, so it can never pose as another source), the port and scheme, a trace id."""
    client = [v for k, v in headers if k.lower() == "x-forwarded-for"]
    kept = [(k, v) for k, v in headers if k.lower() not in _GATEWAY_HEADERS]
    trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    return [
        *kept,
        ("X-Forwarded-For", ", ".join([*client, source_ip])),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", "http"),
        ("X-Amzn-Trace-Id", trace),
    ]


_GATEWAY_HEADERS = {
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-amzn-trace-id",
}


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


class LocalApiGateway:
    """The deployment's REST API on `host:port`, with a resource per agent of `sync_agents`."""

    def __init__(
        self,
        lambda_client: LambdaClient,
        deployment: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sync_agents: Iterable[str] = (),
    ) -> None:
        self._lambda = _without_retries(lambda_client)
        self._deployment = deployment
        self._api = RestApi(api_routes(sync_agents), domain=host)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            # A client that announces a body and stalls would otherwise hold a thread forever; API
            # Gateway's own integration timeout is 29 s.
            timeout = _IDLE_TIMEOUT

            def do_GET(self) -> None:
                gateway._handle(self)

            do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # The standard library's errors (a bad request line, headers too large) are HTML pages;
                # API Gateway's are JSON, and clients parse them. A method with no `do_` here is one no
                # REST API has: API Gateway's 403, never the standard library's 501.
                self.close_connection = True
                if code == HTTPStatus.NOT_IMPLEMENTED:
                    _reply(self, *_gateway_error(403, _MISSING_TOKEN))
                    return
                _reply(self, *_gateway_error(code, message or _phrase(code)))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the function's own logs say what happened

        try:
            self._server = _Server((host, port), Handler)
        except OSError as e:
            raise cannot_listen("the HTTP API", f"{host}:{port}", str(e.strerror), "--port") from e
        self._server.daemon_threads = True
        self._peers = LocalPeers(host, self._server.server_address[1])
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

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body, refused = _read_body(request)
        if refused is None:
            refused = self._refused(request, body)
        if refused is not None:
            _reply(request, *refused)
            return
        try:
            text = body.decode()
        except UnicodeDecodeError as e:
            _reply(request, *_gateway_error(400, f"the body is not UTF-8 text (byte {e.start})"))
            return
        route, _ = self._api.resolve(request.command, _target(request.path)[0])
        event = proxy_event(
            request.command,
            request.path,
            request.headers.items(),
            text,
            request.client_address[0],
            api=self._api,
            protocol=request.request_version,
            server_port=self._server.server_address[1],
        )
        _reply(request, *self._invoke(route.function_name(self._deployment), event))

    def _refused(self, request: BaseHTTPRequestHandler, body: bytes) -> _Answer | None:
        """What a request from outside the developer's machine gets instead of reaching a function."""
        problem = self._peers.host_problem(request.headers.get("Host"))
        problem = problem or self._peers.origin_problem(request.headers.get("Origin"))
        if problem is not None:
            return _gateway_error(403, problem)
        declared = request.headers.get("Content-Type")
        if (
            request.command == "POST"
            and body
            and not _JSON_TYPE.fullmatch((declared or "").split(";")[0].strip())
        ):
            shown = repr(declared[:80]) if declared is not None else "none"
            return _gateway_error(415, f"a POST body must be Content-Type: application/json, not {shown}")
        return None

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


def _without_retries(lambda_client: LambdaClient) -> LambdaClient:
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
