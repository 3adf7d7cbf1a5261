"""How a task ends: an agent's failure as a Flyte phase, and an execution that ended without its Cleanup.

**An agent's failure** (sync agents, async agents and sensors alike). flytepropeller treats a gRPC error
from an agent call as a system failure and retries the task
(flyteplugins/go/tasks/pluginmachinery/internal/webapi/launcher.go: a Create error becomes
`PhaseInfoRetryableFailure`), repeating side effects such as a webhook post. So an agent's own failure never
travels as a gRPC status: it is a `Resource` in phase FAILED (the task cannot succeed as it is: a user error,
rejected credentials, a missing secret, a 4xx from the remote service) or RETRYABLE_FAILED (transient trouble:
throttling, a 5xx, a timeout of the remote service), with a one-line message. Only trouble of this project's
own transport (the HTTP API, the adapter) is a transport error.

Async agents fail inside Lambdas: the state machine's Retry and Catch rules match the exception's class name
(Lambda's `errorType`), and `TRANSIENT_ERROR_NAMES` is the set they retry, so a task whose retries ran out on
one of them ends RETRYABLE_FAILED, any other error FAILED — the same answer `failure_phase` gives in-process.

**An execution that ended without passing its Cleanup state.** StopExecution (ABORTED) and the state
machine's TimeoutSeconds (TIMED_OUT) skip every remaining state, and a FAILED execution may have failed past
Cleanup. For these statuses the agent's delete runs from outside: the status-change rule (infra/cdk
`Finalizer`) routes their events to finalize (`runtime.finalize`), which ends the task with the phase and
message of `EXECUTION_ENDINGS`, and the sweeper (`runtime.sweeper`) lists executions in the same statuses to
finalize those whose event was lost. Any other status is not an ending of this kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from serverless_agents.agent import Phase, Resource
from serverless_agents.exceptions import RetryableAgentError, ServerlessAgentsError, ServiceUnavailable
from serverless_agents.security.masking import excerpt

#: Error names the state machine retries (statemachines/async_agent.asl.json's LambdaRetry fragment); a
#: task whose retries ran out on one of them may succeed when Flyte tries again.
TRANSIENT_ERROR_NAMES = frozenset(
    {
        "RetryableAgentError",
        "ServiceUnavailable",
        "Lambda.TooManyRequestsException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.Unknown",
        "Runtime.ExitError",
        "Sandbox.Timedout",
        "States.Timeout",
        # The Continue state's (continue as new: Step Functions' startExecution integration).
        "StepFunctions.ExecutionLimitExceededException",
        "StepFunctions.SdkClientException",
        "StepFunctions.AWSStepFunctionsException",
    }
)

# Exceptions of the libraries agents use that mean "not now", by name so that none of them is imported here:
# the standard library's, botocore's and urllib3's network failures, httpx's and the OpenAI client's.
_TRANSIENT_NAMES = frozenset(
    {
        "TimeoutError",
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "NewConnectionError",
        "ProtocolError",
        "ConnectTimeout",
        "ReadTimeout",
        "PoolTimeout",
        "ConnectError",
        "RemoteProtocolError",
        "APITimeoutError",
        "APIConnectionError",
        "RateLimitError",
        "InternalServerError",
    }
)
# HTTP statuses a remote service answers when trying again later may work.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 1000


def failure_phase(error: BaseException) -> Phase:
    """RETRYABLE_FAILED for transient trouble, FAILED for everything else."""
    if isinstance(error, RetryableAgentError | ServiceUnavailable):
        return Phase.RETRYABLE_FAILED
    if any(kind.__name__ in _TRANSIENT_NAMES for kind in type(error).__mro__):
        return Phase.RETRYABLE_FAILED
    status = _http_status(error)
    if status is not None:
        return Phase.RETRYABLE_FAILED if status in _TRANSIENT_STATUSES else Phase.FAILED
    if isinstance(error, ServerlessAgentsError):  # the project's own errors say by their class
        return Phase.FAILED
    if any(failure_phase(cause) is Phase.RETRYABLE_FAILED for cause in _causes(error)):
        return Phase.RETRYABLE_FAILED
    return Phase.FAILED


def transient_beyond_its_name(error: BaseException) -> bool:
    """Whether `error` is transient for a reason its class name does not carry: what it wraps (urllib's
    `URLError` around a refused connection, a library's own error raised `from` a timeout) or the HTTP
    status it holds (a client library's error for a 503). Its class name alone, which is all that Lambda's
    `errorType` and a masked copy keep, would say FAILED, so an async agent's task would end FAILED where a
    sync agent's ends RETRYABLE_FAILED."""
    return (
        failure_phase(error) is Phase.RETRYABLE_FAILED
        and phase_for_error_name(type(error).__name__) is Phase.FAILED
    )


def _causes(error: BaseException) -> list[BaseException]:
    """What `error` wraps: urllib's `reason`, then the explicit and implicit chain, a few links deep (a
    chain can be a cycle)."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(found) < 5:
        reason = getattr(current, "reason", None)
        wrapped = reason if isinstance(reason, BaseException) else current.__cause__ or current.__context__
        if wrapped is None or wrapped is error or wrapped in found:
            break
        found.append(wrapped)
        current = wrapped
    return found


def failure_resource(error: BaseException) -> Resource:
    """The Resource a failed agent call reports: its phase, and the error's type and message on one line."""
    phase = failure_phase(error)
    return Resource(
        phase, one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    )


def phase_for_error_name(name: str) -> Phase:
    """The phase for an error the state machine caught, by its name (Lambda's `errorType`): the names it
    retries, and the transient errors of the libraries agents use (a TimeoutError, the OpenAI client's
    APITimeoutError), end RETRYABLE_FAILED, as `failure_phase` decides for the same error in-process."""
    transient = name in TRANSIENT_ERROR_NAMES or name in _TRANSIENT_NAMES
    return Phase.RETRYABLE_FAILED if transient else Phase.FAILED


def one_line(text: str) -> str:
    """Propeller shows the message verbatim in Flyte's UI: one line, of a length a person reads (secrets
    masked before the cut, and none cut in half: `masking.excerpt`)."""
    return excerpt(" ".join(text.split()), _MAX_MESSAGE)


def _http_status(error: BaseException) -> int | None:
    """The HTTP status a client library's error carries: `status_code` (OpenAI, httpx's response), `status`
    (urllib3), or botocore's `response["ResponseMetadata"]["HTTPStatusCode"]`."""
    for holder in (error, getattr(error, "response", None)):
        for attribute in ("status_code", "status"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


# Executions that skipped Cleanup.


@dataclass(frozen=True)
class ExecutionEnding:
    """The phase a task ends in, and its message, formatted with the execution's `error` and `cause`."""

    phase: Phase
    template: str

    def message(self, error: str | None, cause: str | None) -> str:
        return self.template.format(error=error or "", cause=cause or "").rstrip(": ")


#: Step Functions execution status -> how the task ends.
EXECUTION_ENDINGS = MappingProxyType(
    {
        "ABORTED": ExecutionEnding(Phase.ABORTED, "aborted (DeleteTask or StopExecution): {cause}"),
        "TIMED_OUT": ExecutionEnding(Phase.FAILED, "timed out: the task ran past its execution_timeout"),
        "FAILED": ExecutionEnding(Phase.FAILED, "failed: {error}: {cause}"),
    }
)
#: The statuses the status-change rule matches, finalize handles and the sweeper lists.
ENDED_STATUSES: tuple[str, ...] = tuple(EXECUTION_ENDINGS)
#: The envelope of the event EventBridge sends when an execution's status changes: the status-change
#: rule's pattern (`plan.status_change_rule`) and the events the sweeper and the local driver make.
STATUS_CHANGE_SOURCE = "aws.states"
STATUS_CHANGE_DETAIL_TYPE = "Step Functions Execution Status Change"
