"""The one mapping from the project's exceptions to gRPC status codes, with a line a user can act on."""

from __future__ import annotations

import logging
import traceback

import grpc

from serverless_agents.api.client import ApiError
from serverless_agents.exceptions import ServerlessAgentsError

logger = logging.getLogger(__name__)
#: Longest status message: messages may quote what a caller sent (a 4 MB task type), and grpc carries the
#: message in a header that clients refuse past 8 kB by default.
MAX_MESSAGE = 1000


def grpc_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    code = (
        grpc.StatusCode[error.grpc_code]
        if isinstance(error, ServerlessAgentsError)
        else grpc.StatusCode.INTERNAL
    )
    if code is grpc.StatusCode.INTERNAL and not isinstance(error, ApiError):
        message = f"{type(error).__name__}: {error}"
        # The frames, and the message as bounded as the caller's: never a caller's megabytes in the log.
        frames = "".join(traceback.format_tb(error.__traceback__))
        logger.error("unexpected error in the adapter: %s\n%s", bounded(message), frames)
    else:
        message = str(error)
    return code, bounded(message)


def bounded(message: str) -> str:
    """One line (propeller shows it to the user verbatim), at most `MAX_MESSAGE` characters."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else f"{line[: MAX_MESSAGE - 3]}..."
