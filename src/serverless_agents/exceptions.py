"""Every error the project raises, in one place.

Each class says how every transport names it, once: its HTTP status (`http_status`, which the api Lambda
answers with: `serverless_agents.api.resolver.error_response`) and its gRPC status code (`grpc_code`, a
`grpc.StatusCode` name, which the adapter answers with: `serverless_agents.adapter.errors.grpc_status`); the
Step Functions error name is the class name, which Lambda reports as `errorType`, for the state machine's
Retry and Catch rules. What a class does not set is the service's own fault: 500, INTERNAL.
Messages are one line a user can act on.
"""

from __future__ import annotations


class ServerlessAgentsError(Exception):
    """Base of every error this project raises on purpose."""

    http_status: int = 500
    grpc_code: str = "INTERNAL"


class InvalidRequest(ServerlessAgentsError):
    """The caller sent something we cannot use; `field` names the part that is wrong."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class LiteralConversionError(InvalidRequest):
    """A Flyte literal does not match its declared type, or a Python value cannot become one."""


class ManifestError(ServerlessAgentsError):
    """`agents.toml` is malformed or names something that cannot be loaded."""


class DuplicateAgentError(ManifestError):
    """Two agents claim the same (task type, version) or the same name."""


class AgentNotFound(ServerlessAgentsError):
    """No deployed agent serves this task type and version (or this name)."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class TaskNotFound(ServerlessAgentsError):
    """No task has this id (never created, or expired from the tasks table)."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class RouteNotFound(ServerlessAgentsError):
    """The HTTP API has no such route."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class AgentError(ServerlessAgentsError):
    """For agents to say "this task cannot succeed": the task ends FAILED with this message, not retried."""


class RetryableAgentError(ServerlessAgentsError):
    """Transient trouble (throttling, a flaky dependency): the state machine retries, Flyte may too.

    Agents raise this (or a subclass) to say "try again". Anything else an agent raises, `AgentError` or
    not, ends the task FAILED with the exception's type and message.
    """

    http_status = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(ServerlessAgentsError):
    """A call did not finish within its time limit: a sync agent's `timeout`, or the caller's deadline."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class TaskTimedOut(ServerlessAgentsError):
    """An async task ran past its `execution_timeout`, counted from the task's start across every execution
    of its chain: the get raises it, and the state machine's Catch runs Cleanup (the agent's delete)."""


class ServiceUnavailable(ServerlessAgentsError):
    """An AWS service we depend on is throttling us or cannot be reached right now."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class NotOurDeployment(ServerlessAgentsError):
    """`serverless-agents check` was pointed at a stack that is not a serverless-agents deployment (or is
    not deployed): it refuses to run anything there."""


class DestinationRefused(InvalidRequest):
    """An agent's outbound URL is malformed or names a destination it may not call; nothing was sent."""


class DestinationUnavailable(RetryableAgentError):
    """An agent's outbound call got no answer: the name did not resolve, or connecting or reading failed."""


def cannot_listen(what: str, address: str, reason: str, flag: str) -> OSError:
    """The error for a port `up` or `adapter` cannot listen on: which server, which address, why, and the
    flag that picks another (a bare "Address already in use" leaves the user guessing which of three)."""
    return OSError(
        f"cannot serve {what} on {address}: {reason} (choose another {flag}, or 0 for any free port)"
    )


def http_status_of(error: BaseException) -> int:
    """The HTTP status that says `error`: its class's, or 500 for anything not raised on purpose."""
    return error.http_status if isinstance(error, ServerlessAgentsError) else 500
