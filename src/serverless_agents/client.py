"""A client for the project's HTTP API, speaking flyteidl messages (the adapter, the demo and tests use it).

Connections are pooled (urllib3, which botocore already brings). Pointed at API Gateway on AWS
(`https://<id>.execute-api.<region>.amazonaws.com/...`), requests are signed with SigV4 for `execute-api`
using botocore's credential chain, as the API's IAM auth requires; pointed anywhere else (the local stack),
they are not. Errors come back as the project's exceptions, rebuilt from the API's error body, so the
adapter maps them to gRPC codes in one place whichever side raised them.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from flyteidl.admin import agent_pb2
from google.protobuf.message import Message

from serverless_agents import wire
from serverless_agents.exceptions import (
    AgentNotFound,
    DeadlineExceeded,
    InvalidRequest,
    ServerlessAgentsError,
    ServiceUnavailable,
    TaskNotFound,
)

T = TypeVar("T", bound=Message)

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


class ResponseTimeout(DeadlineExceeded):
    """No answer within the time this client gave the call (the caller's deadline, or the default)."""

    def __init__(self, base_url: str, seconds: float) -> None:
        super().__init__(f"the API at {base_url} did not answer within {seconds:.1f} s")
        self.seconds = seconds


def task_id_from_resource_meta(resource_meta: bytes) -> str:
    """The task id inside a `resource_meta` this service issued (see runtime.service.resource_meta)."""
    try:
        task_id = json.loads(resource_meta)["task_id"]
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidRequest("resource_meta", f"not a resource_meta this service issued ({e})") from e
    if not isinstance(task_id, str):
        raise InvalidRequest("resource_meta", "task_id is not a string")
    return task_id


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        host = urlsplit(self.base_url).hostname or ""
        if signer is None and (match := _EXECUTE_API_HOST.match(host)):
            signer = SigV4Signer(match["region"])
        self.signer = signer
        # No retries here: a GetTask that failed is asked again on the caller's next poll anyway, and a
        # retried create is idempotent at the API; retrying inside a deadline would only eat it.
        self._pool = pool or urllib3.PoolManager(maxsize=32, retries=False)

    def create_task(
        self, request: agent_pb2.CreateTaskRequest, *, timeout: float | None = None
    ) -> agent_pb2.CreateTaskResponse:
        return self._call("POST", "/v1/tasks", agent_pb2.CreateTaskResponse, request, timeout)

    def get_task(self, task_id: str, *, timeout: float | None = None) -> agent_pb2.GetTaskResponse:
        return self._call("GET", f"/v1/tasks/{task_id}", agent_pb2.GetTaskResponse, None, timeout)

    def delete_task(self, task_id: str, *, timeout: float | None = None) -> agent_pb2.DeleteTaskResponse:
        return self._call("DELETE", f"/v1/tasks/{task_id}", agent_pb2.DeleteTaskResponse, None, timeout)

    def list_agents(self, *, timeout: float | None = None) -> agent_pb2.ListAgentsResponse:
        return self._call("GET", "/v1/agents", agent_pb2.ListAgentsResponse, None, timeout)

    def execute_sync(
        self, agent: str, request: agent_pb2.CreateTaskRequest, *, timeout: float | None = None
    ) -> agent_pb2.ExecuteTaskSyncResponseHeader:
        return self._call(
            "POST", f"/v1/sync/{agent}", agent_pb2.ExecuteTaskSyncResponseHeader, request, timeout
        )

    def _call(
        self, method: str, path: str, response_type: type[T], body: Message | None, timeout: float | None
    ) -> T:
        url = self.base_url + path
        data = json.dumps(wire.to_dict(body)).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers = self.signer.headers(method, url, data, headers)
        seconds = timeout or self.timeout
        try:
            response = self._pool.request(
                method, url, body=data, headers=headers, timeout=seconds, redirect=False
            )
        except urllib3.exceptions.ReadTimeoutError as e:
            raise ResponseTimeout(self.base_url, seconds) from e
        except urllib3.exceptions.HTTPError as e:
            raise ServiceUnavailable(f"the API at {self.base_url} cannot be reached: {e}") from e
        if response.status >= 300:
            raise _error_from(response.status, response.data)
        return wire.from_json(response_type, response.data, field="response")


def _error_from(status: int, body: bytes) -> ServerlessAgentsError:
    try:
        error = json.loads(body)["error"]
        code, message, field = str(error["code"]), str(error["message"]), str(error.get("field", "request"))
    except (ValueError, KeyError, TypeError):
        code, message, field = "HTTPError", body[:200].decode(errors="replace"), "request"
    if status == 400:
        return InvalidRequest(field, message)
    if status == 404:
        return (TaskNotFound if code == "TaskNotFound" else AgentNotFound)(message)
    if status == 504:  # the agent's own limit (our 504), or API Gateway's integration timeout
        return DeadlineExceeded(message)
    if status in (429, 502, 503):
        return ServiceUnavailable(f"the API answered {status}: {message}")
    if status == 403:
        return ApiError(status, code, f"{message} (are the adapter's AWS credentials allowed to call it?)")
    return ApiError(status, code, message)
