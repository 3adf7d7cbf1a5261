"""One mapping from agent failures to Flyte phases, for sync agents, async agents (by error name, as the
state machine reports them) and sensors."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from urllib3.exceptions import ReadTimeoutError

from serverless_agents.agent import Phase
from serverless_agents.deployment.statemachine import AsyncAgentFunctions, render_definition
from serverless_agents.exceptions import AgentError, ManifestError, RetryableAgentError, ServiceUnavailable
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.endings import (
    TRANSIENT_ERROR_NAMES,
    failure_phase,
    failure_resource,
    one_line,
    phase_for_error_name,
)


class StatusError(Exception):
    """Shaped like openai.APIStatusError / httpx's error: a `status_code` attribute."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class APITimeoutError(Exception):
    """Named as the OpenAI client's timeout is."""


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("error", "phase"),
    [
        (AgentError("the job cannot run"), Phase.FAILED),
        (ManifestError("no secret 'x'"), Phase.FAILED),
        (ValueError("bad"), Phase.FAILED),
        (RetryableAgentError("later"), Phase.RETRYABLE_FAILED),
        (ServiceUnavailable("throttled"), Phase.RETRYABLE_FAILED),
        (TimeoutError("slow"), Phase.RETRYABLE_FAILED),
        (ReadTimeoutError(None, "/", "read timed out"), Phase.RETRYABLE_FAILED),
        (ConnectionRefusedError("down"), Phase.RETRYABLE_FAILED),
        (EndpointConnectionError(endpoint_url="https://x"), Phase.RETRYABLE_FAILED),
        (APITimeoutError("slow"), Phase.RETRYABLE_FAILED),
        (StatusError(401), Phase.FAILED),
        (StatusError(404), Phase.FAILED),
        (StatusError(429), Phase.RETRYABLE_FAILED),
        (StatusError(503), Phase.RETRYABLE_FAILED),
        (client_error("ResourceNotFoundException", 400), Phase.FAILED),
        (client_error("AccessDeniedException", 400), Phase.FAILED),
        (client_error("InternalFailure", 500), Phase.RETRYABLE_FAILED),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_failure_phase(error: BaseException, phase: Phase) -> None:
    assert failure_phase(error) is phase


def test_failure_resource_is_one_line_naming_the_error() -> None:
    resource = failure_resource(AgentError("line one\n  line two\ttabbed"))

    assert resource.phase is Phase.FAILED
    assert resource.message == "AgentError: line one line two tabbed"
    assert failure_resource(KeyError()).message == "KeyError"


def test_one_line_bounds_the_length() -> None:
    assert len(one_line("x" * 5000)) == 1000
    assert one_line("x" * 5000).endswith("...")


def test_every_error_the_state_machine_retries_is_transient() -> None:
    # A task whose retries ran out on an error the ASL retries ends RETRYABLE_FAILED: Flyte may try again.
    functions = AsyncAgentFunctions("aws", "arn:c", "arn:g", "arn:d", 60)
    states: dict[str, Any] = json.loads(render_definition(functions.substitutions()))["States"]
    retried_by_state = {
        name: {error for retry in state.get("Retry", []) for error in retry["ErrorEquals"]}
        for name, state in states.items()
        if state["Type"] == "Task"
    }
    retried = set().union(*retried_by_state.values())

    # Create, Get, Cleanup (the agent's delete) and Continue each retry transient trouble, and only that.
    assert set(retried_by_state) == {"Create", "Get", "Cleanup", "Continue"}
    assert all(retried_by_state.values())
    assert retried <= TRANSIENT_ERROR_NAMES
    assert {phase_for_error_name(name) for name in retried} == {Phase.RETRYABLE_FAILED}
    assert phase_for_error_name("AgentError") is Phase.FAILED


def test_an_agents_custom_info_may_not_use_the_runtimes_keys() -> None:
    from serverless_agents.agent import RESERVED_CUSTOM_INFO, Resource
    from serverless_agents.runtime.boundary import call_agent

    def get() -> Resource:
        return Resource(Phase.RUNNING, "working", custom_info={"polls": 3, "rows": 10})

    with pytest.raises(AgentError) as error:
        call_agent(get)

    assert str(error.value) == (
        "custom_info key(s) polls are the runtime's own (reserved: execution_arn, pokes, polls, "
        "state_transitions): name them otherwise"
    )
    assert failure_resource(error.value).phase is Phase.FAILED
    assert call_agent(lambda: Resource(Phase.RUNNING, custom_info={"rows": 10})).custom_info == {"rows": 10}
    assert {"execution_arn", "polls", "state_transitions", "pokes"} == RESERVED_CUSTOM_INFO


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("slow"),
        ConnectionRefusedError("down"),
        APITimeoutError("slow"),
        EndpointConnectionError(endpoint_url="https://x"),
        AgentError("no"),
        ValueError("bad"),
        RetryableAgentError("later"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_async_agents_error_ends_in_the_phase_a_sync_agents_would(error: BaseException) -> None:
    # In a Lambda, the state machine sees only the error's name (errorType); in-process, the error itself.
    assert phase_for_error_name(type(error).__name__) is failure_phase(error)


def _refused_url() -> str:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


class LibraryError(Exception):
    """A client library's own error, raised `from` the network trouble it met."""


def _wrapped_timeout() -> None:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError as e:
        raise LibraryError("the service did not answer") from e


def test_a_connection_refused_by_the_remote_service_is_retryable_as_the_docs_say() -> None:
    # docs/flyte-integration.md: "a timeout or a lost connection of its remote service" is RETRYABLE_FAILED.
    # urllib wraps the refusal in URLError, whose name alone says nothing: it ended FAILED at once.
    with pytest.raises(urllib.error.URLError) as raised:
        urllib.request.urlopen(_refused_url(), timeout=5)
    assert failure_phase(raised.value) is Phase.RETRYABLE_FAILED
    assert failure_phase(LibraryError("x").with_traceback(None)) is Phase.FAILED


@pytest.mark.parametrize(
    "agent_method",
    [lambda: urllib.request.urlopen(_refused_url(), timeout=5), _wrapped_timeout],
    ids=["urllib-refused", "raised-from-timeout"],
)
def test_transient_by_what_it_wraps_leaves_the_agent_as_a_retryable_error(agent_method: Any) -> None:
    # The state machine and a masked copy keep only the class name: the boundary names it RetryableAgentError.
    with pytest.raises(RetryableAgentError) as raised:
        call_agent(agent_method)
    assert failure_resource(raised.value).phase is Phase.RETRYABLE_FAILED
    assert phase_for_error_name(type(raised.value).__name__) is Phase.RETRYABLE_FAILED
    assert raised.value.__cause__ is None


class UpstreamError(Exception):
    """A client library's error holding the HTTP status its service answered, under a name of its own."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"the service answered {status_code}")
        self.status_code = status_code


def _answers(status: int) -> Any:
    def agent_method() -> None:
        raise UpstreamError(status)

    return agent_method


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_transient_status_an_error_holds_ends_retryable_in_an_async_agent_as_in_a_sync_one(
    status: int,
) -> None:
    # A sync agent's failure is mapped in-process (failure_resource: RETRYABLE_FAILED by the status); an
    # async agent's travels as Lambda's errorType, the class name: the boundary makes it RetryableAgentError
    # so both end alike (it ended FAILED in an async agent).
    assert failure_resource(UpstreamError(status)).phase is Phase.RETRYABLE_FAILED
    with pytest.raises(RetryableAgentError) as raised:
        call_agent(_answers(status))
    assert phase_for_error_name(type(raised.value).__name__) is Phase.RETRYABLE_FAILED


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_refusal_an_error_holds_stays_the_agents_own_error(status: int) -> None:
    with pytest.raises(UpstreamError):
        call_agent(_answers(status))
    assert failure_resource(UpstreamError(status)).phase is Phase.FAILED


def test_an_agent_error_raised_from_a_timeout_stays_the_agents_verdict() -> None:
    # An agent that says FAILED on purpose (AgentError) is not second-guessed by what it wraps.
    def refuses() -> None:
        try:
            raise TimeoutError
        except TimeoutError as e:
            raise AgentError("the query is invalid") from e

    with pytest.raises(AgentError):
        call_agent(refuses)
