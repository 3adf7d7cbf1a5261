"""A client for the project's HTTP API, speaking flyteidl messages (the adapter, the demo and tests use it).

Connections are pooled (urllib3, which botocore already brings). Pointed at API Gateway on AWS
(`https://<id>.execute-api.<region>.amazonaws.com/...`), requests are signed with SigV4 for `execute-api`
using botocore's credential chain, as the API's IAM auth requires; pointed anywhere else (the local stack),
they are not. Errors come back as the project's exceptions, rebuilt from the API's error body, so the
adapter maps them to gRPC codes in one place whichever side raised them.
"""

from __future__ import annotations

import json
import random
import re
import time
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import urllib3
from flyteidl.admin import agent_pb2
from google.protobuf.message import Message

from serverless_agents.exceptions import (
    AgentNotFound,
    DeadlineExceeded,
    InvalidRequest,
    RouteNotFound,
    ServerlessAgentsError,
    ServiceUnavailable,
)
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import check_agent_name, check_task_id

# Re-exported for code written when it lived here (serverless_agents.flyte.resource_meta holds it).
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta as task_id_from_resource_meta

T = TypeVar("T", bound=Message)

_MARKUP = re.compile(r"<[^>]*>")
#: Pauses between tries of a throttled request (jittered, doubling), and the least time a try needs.
_FIRST_THROTTLE_PAUSE, _LONGEST_THROTTLE_PAUSE, _SHORTEST_RETRY = 0.05, 1.0, 0.2
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ApiError(ServerlessAgentsError):
    """The API answered with an error this client has no more specific exception for.

    The message is the API's own; the status and error code are attributes, not text, so that what reaches a
    Flyte user reads as the cause, not as transport detail.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        # The API's status travels on; the API refusing the adapter's credentials is PERMISSION_DENIED.
        self.http_status = status
        self.grpc_code = "PERMISSION_DENIED" if status == 403 else "INTERNAL"


class ResponseTimeout(DeadlineExceeded):
    """No answer within the time this client gave the call (the caller's deadline, or the default)."""

    def __init__(self, base_url: str, seconds: float) -> None:
        super().__init__(f"the API at {base_url} did not answer within {seconds:.1f} s")
        self.seconds = seconds


class SigV4Signer:
    """Signs requests for API Gateway's IAM auth with the default botocore credential chain."""

    def __init__(self, region: str, session: Any = None) -> None:
        import botocore.session

        self.region = region
        self._session = session or botocore.session.get_session()

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._session.get_credentials()
        if credentials is None:
            raise ServiceUnavailable("no AWS credentials found to sign requests to the API")
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        signer: SigV4Signer | None = None,
        pool: urllib3.PoolManager | None = None,
        connections: int = 32,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        host = urlsplit(self.base_url).hostname or ""
        if signer is None and (match := _EXECUTE_API_HOST.match(host)):
            signer = SigV4Signer(match["region"])
        self.signer = signer
        # No retries here but of a throttled request (429, in `_send`): a GetTask that failed is asked
        # again on the caller's next poll anyway, and a retried create is idempotent at the API;
        # retrying a failure inside a deadline would only eat it.
        # `connections` kept alive: as many as calls run at once (the adapter's workers).
        self._pool = pool or urllib3.PoolManager(maxsize=connections, retries=False)

    def create_task(
        self, request: agent_pb2.CreateTaskRequest, *, timeout: float | None = None
    ) -> agent_pb2.CreateTaskResponse:
        return self._call("POST", "/v1/tasks", agent_pb2.CreateTaskResponse, request, timeout)

    def create_flyte2_task(
        self,
        request: agent_pb2.CreateTaskRequest,
        flyte2_request: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> agent_pb2.CreateTaskResponse:
        """A Flyte 2 executor's CreateTask: `request` its Flyte 1 translation, `flyte2_request` its own
        request as protobuf JSON, `Connection.secrets` included (this HTTPS body is the only place they
        travel: the API keeps them in Secrets Manager)."""
        body = {"request": wire.to_dict(request), "flyte2Request": flyte2_request}
        return self._send("POST", "/v1/flyte2/tasks", agent_pb2.CreateTaskResponse, body, timeout)

    def get_task(self, task_id: str, *, timeout: float | None = None) -> agent_pb2.GetTaskResponse:
        path = f"/v1/tasks/{check_task_id(task_id)}"  # never a path or query of the caller's making
        return self._call("GET", path, agent_pb2.GetTaskResponse, None, timeout)

    def delete_task(self, task_id: str, *, timeout: float | None = None) -> agent_pb2.DeleteTaskResponse:
        path = f"/v1/tasks/{check_task_id(task_id)}"
        return self._call("DELETE", path, agent_pb2.DeleteTaskResponse, None, timeout)

    def get_task_logs(
        self, task_id: str, token: str = "", lines: int | None = None, *, timeout: float | None = None
    ) -> tuple[agent_pb2.GetTaskLogsResponseBody, str]:
        """A page of the task's own log lines, and the token of the next page (empty on the last)."""
        query = {"token": token} if token else {}
        if lines is not None:
            query["lines"] = str(lines)
        path = f"/v1/tasks/{check_task_id(task_id)}/logs"
        if query:
            path += "?" + urlencode(query)
        page = wire.json_object(self._request("GET", path, None, timeout), field="response")
        body = wire.from_dict(
            agent_pb2.GetTaskLogsResponseBody, page.get("body") or {}, field="response.body"
        )
        return body, str(page.get("token") or "")

    def get_task_metrics(
        self, task_id: str, queries: list[str] | None = None, *, timeout: float | None = None
    ) -> agent_pb2.GetTaskMetricsResponse:
        path = f"/v1/tasks/{check_task_id(task_id)}/metrics"
        if queries:
            path += "?" + urlencode({"queries": ",".join(queries)})
        return self._call("GET", path, agent_pb2.GetTaskMetricsResponse, None, timeout)

    def list_agents(self, *, timeout: float | None = None) -> agent_pb2.ListAgentsResponse:
        return self._call("GET", "/v1/agents", agent_pb2.ListAgentsResponse, None, timeout)

    def execute_sync(
        self, agent: str, request: agent_pb2.CreateTaskRequest, *, timeout: float | None = None
    ) -> agent_pb2.ExecuteTaskSyncResponseHeader:
        path = f"/v1/sync/{check_agent_name(agent)}"
        return self._call("POST", path, agent_pb2.ExecuteTaskSyncResponseHeader, request, timeout)

    def _call(
        self, method: str, path: str, response_type: type[T], body: Message | None, timeout: float | None
    ) -> T:
        return self._send(
            method, path, response_type, wire.to_dict(body) if body is not None else None, timeout
        )

    def _send(
        self,
        method: str,
        path: str,
        response_type: type[T],
        body: dict[str, Any] | None,
        timeout: float | None,
    ) -> T:
        data = self._request(method, path, body, timeout)
        return wire.from_json(response_type, data, field="response")

    def _request(self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None) -> bytes:
        """The API's answer to one request, its body; an error answer raised as the project's exception."""
        url = self.base_url + path
        data = json.dumps(body).encode() if body is not None else None
        seconds = timeout or self.timeout
        deadline = time.monotonic() + seconds
        pause = _FIRST_THROTTLE_PAUSE
        while True:
            response = self._attempt(method, url, data, seconds)
            left = deadline - time.monotonic()
            # A throttled request (429: API Gateway's rate limit, or Lambda's concurrency) did nothing:
            # try it again while the deadline leaves room, as a burst of creates meets the stage's limit.
            if response.status != 429 or left < pause + _SHORTEST_RETRY:
                break
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, _LONGEST_THROTTLE_PAUSE)
            seconds = deadline - time.monotonic()
        if response.status >= 300:
            raise _error_from(response.status, response.data)
        return bytes(response.data)

    def _attempt(self, method: str, url: str, data: bytes | None, seconds: float) -> urllib3.BaseHTTPResponse:
        # The API starts no create it could not answer in time (see serverless_agents.api.http_api).
        headers = {"Content-Type": "application/json", wire.CLIENT_TIMEOUT_HEADER: str(int(seconds * 1000))}
        if self.signer is not None:
            headers = self.signer.headers(method, url, data, headers)
        try:
            return self._pool.request(
                method, url, body=data, headers=headers, timeout=seconds, redirect=False
            )
        except urllib3.exceptions.ReadTimeoutError as e:
            raise ResponseTimeout(self.base_url, seconds) from e
        except urllib3.exceptions.HTTPError as e:
            raise ServiceUnavailable(f"the API at {self.base_url} {_unreachable(e, seconds)}") from e


def _unreachable(error: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """Say which way the call failed: a refused connection means nothing listens; a timeout, a slow API."""
    # urllib3 makes NewConnectionError a ConnectTimeoutError too, so it is told apart first.
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        if isinstance(error.__cause__, ConnectionRefusedError):
            return "cannot be reached: connection refused (is it running, on this port?)"
        return f"cannot be reached: {error.__cause__ or error}"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return f"gave no answer within {timeout:g} s"
    return f"cannot be reached: {error}"


def _error_from(status: int, body: bytes) -> ServerlessAgentsError:
    """The exception an error answer stands for: the class of ours its body names, when that class answers
    with this status (the API's own errors: `exceptions`' classes say their status); else by the status
    alone (API Gateway's, or a proxy's, answers)."""
    code, message, field = _error_body(status, body)
    kind = _OURS.get(code)
    if kind is not None and kind.http_status == status:
        return InvalidRequest(field, message) if issubclass(kind, InvalidRequest) else kind(message)
    if status in (400, 413, 414, 431):
        return InvalidRequest(field, message)
    if status == 404:  # no such route: the agent it names is not deployed there
        return AgentNotFound(message)
    if status == 504:  # API Gateway's integration timeout
        return DeadlineExceeded(message)
    if status in (429, 502, 503):
        return ServiceUnavailable(f"the API answered {status}: {message}")
    if status == 403:
        return ApiError(status, code, f"{message} (are the adapter's AWS credentials allowed to call it?)")
    return ApiError(status, code, message)


def _subclasses(kind: type[ServerlessAgentsError]) -> list[type[ServerlessAgentsError]]:
    return [kind, *(sub for direct in kind.__subclasses__() for sub in _subclasses(direct))]


#: The errors the API answers with, by the name its body gives (`{"error": {"code": ...}}`).
_OURS = {
    kind.__name__: kind
    for kind in _subclasses(ServerlessAgentsError)
    if kind.http_status != 500 and kind is not RouteNotFound
}


def _error_body(status: int, body: bytes) -> tuple[str, str, str]:
    """(code, one-line message, field) from our API's error body, API Gateway's own, or anything else."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    code, field = "HTTPError", "request"
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        code, message = str(error.get("code", code)), str(error.get("message", ""))
        field = str(error.get("field") or field)
    elif isinstance(data, dict) and "message" in data:  # API Gateway's own: {"message": "..."}
        message = str(data["message"])
    else:  # a proxy's HTML page: its text, without the markup, says enough
        text = _MARKUP.sub(" ", body[:2000].decode(errors="replace"))
        message = f"{status} {_reason(status)}: {text}"
    message = " ".join(message.split())
    return code, message if len(message) <= 300 else message[:297] + "...", field


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"
