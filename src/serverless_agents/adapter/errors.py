"""The one mapping from the project's exceptions to gRPC status codes, with a line a user can act on."""

from __future__ import annotations

import logging

import grpc

from serverless_agents.client import ApiError
from serverless_agents.exceptions import (
    AgentNotFound,
    DeadlineExceeded,
    InvalidRequest,
    RetryableAgentError,
    ServiceUnavailable,
    TaskNotFound,
)

logger = logging.getLogger(__name__)

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (AgentNotFound, grpc.StatusCode.NOT_FOUND),
    (TaskNotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ServiceUnavailable, grpc.StatusCode.UNAVAILABLE),
    (RetryableAgentError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
]


def grpc_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    code = next((code for kind, code in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL)
    if isinstance(error, ApiError) and error.status == 403:
        code = grpc.StatusCode.PERMISSION_DENIED
    if code is grpc.StatusCode.INTERNAL and not isinstance(error, ApiError):
        logger.exception("unexpected error in the adapter")
        message = f"{type(error).__name__}: {error}"
    else:
        message = str(error)
    return code, " ".join(message.split())  # one line: propeller shows it to the user verbatim
