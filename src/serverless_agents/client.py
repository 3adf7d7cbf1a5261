"""A client for the project's HTTP API, speaking flyteidl messages (used by the demo, tests and adapter).

Errors come back as the project's exceptions, rebuilt from the API's error body, so a caller handles
`TaskNotFound` the same whether it called the runtime directly or over HTTP.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TypeVar

from flyteidl.admin import agent_pb2
from google.protobuf.message import Message

from serverless_agents import wire
from serverless_agents.exceptions import (
    AgentNotFound,
    InvalidRequest,
    ServerlessAgentsError,
    ServiceUnavailable,
    TaskNotFound,
)

T = TypeVar("T", bound=Message)


class ApiError(ServerlessAgentsError):
    """The API answered with an error this client has no more specific exception for."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code


def task_id_from_resource_meta(resource_meta: bytes) -> str:
    try:
        return str(json.loads(resource_meta)["task_id"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidRequest("resource_meta", f"not a resource_meta this service issued ({e})") from e


class ApiClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def create_task(self, request: agent_pb2.CreateTaskRequest) -> agent_pb2.CreateTaskResponse:
        return self._call("POST", "/v1/tasks", agent_pb2.CreateTaskResponse, request)

    def get_task(self, task_id: str) -> agent_pb2.GetTaskResponse:
        return self._call("GET", f"/v1/tasks/{task_id}", agent_pb2.GetTaskResponse)

    def delete_task(self, task_id: str) -> agent_pb2.DeleteTaskResponse:
        return self._call("DELETE", f"/v1/tasks/{task_id}", agent_pb2.DeleteTaskResponse)

    def list_agents(self) -> agent_pb2.ListAgentsResponse:
        return self._call("GET", "/v1/agents", agent_pb2.ListAgentsResponse)

    def execute_sync(
        self, agent: str, request: agent_pb2.CreateTaskRequest
    ) -> agent_pb2.ExecuteTaskSyncResponseHeader:
        return self._call("POST", f"/v1/sync/{agent}", agent_pb2.ExecuteTaskSyncResponseHeader, request)

    def _call(self, method: str, path: str, response_type: type[T], body: Message | None = None) -> T:
        data = json.dumps(wire.to_dict(body)).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return wire.from_json(response_type, response.read(), field="response")
        except urllib.error.HTTPError as e:
            raise _error_from(e.code, e.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise ServiceUnavailable(f"the API at {self.base_url} cannot be reached: {e}") from e


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
    if status in (429, 502, 503, 504):
        return ServiceUnavailable(message)
    return ApiError(status, code, message)
