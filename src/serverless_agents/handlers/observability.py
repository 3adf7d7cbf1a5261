"""Powertools' Logger and Metrics for the handlers (and only for them), and its Tracer where it is asked for.

Creating a Tracer imports the X-Ray SDK and patches botocore: about a third of a cold start. Lambda's
active tracing (on for every function) and Step Functions' tracing draw the service map without it; the
SDK only adds a subsegment per AWS call and the handler's annotations. So `capture_lambda_handler` makes
a Tracer only for a function whose agent sets `tracing = true` in the manifest (the CDK app then sets
`SA_TRACING=true` in its environment), and only at its first invocation.

`redacted_output`, the outermost decorator of every handler, installs the masking of log records and of
`sys.stdout` / `sys.stderr` (`serverless_agents.security.redaction`), masks secrets at the process's file
descriptors 1 and 2 in Lambda (`serverless_agents.security.fd_redaction`) and flushes them when the invocation
ends, after Powertools has printed its metrics.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

from serverless_agents.runtime.settings import POWERTOOLS_NAMESPACE, POWERTOOLS_SERVICE, TRACING, environ
from serverless_agents.runtime.task_logging import end_task, log_for_task
from serverless_agents.security import fd_redaction, redaction

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(service=POWERTOOLS_SERVICE)
metrics = Metrics(namespace=POWERTOOLS_NAMESPACE, service=POWERTOOLS_SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_on() -> bool:
    return environ().get(TRACING, "").lower() == "true"


@functools.cache
def tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=POWERTOOLS_SERVICE)


@functools.cache
def _traced(handler: Handler) -> Handler:
    return cast("Handler", tracer().capture_lambda_handler(handler))


def capture_lambda_handler(handler: Handler) -> Handler:
    """Powertools' `Tracer.capture_lambda_handler` around `handler` where tracing is on; else `handler`."""

    @functools.wraps(handler)
    def maybe_traced(event: Any, context: Any) -> Any:
        return (_traced(handler) if tracing_on() else handler)(event, context)

    return cast("Handler", maybe_traced)


def log_task(task_id: str | None) -> None:
    """Every line this invocation logs from now on carries `task_id` (GetTaskLogs filters on it): Powertools'
    and every other logger's (`serverless_agents.runtime.task_logging`). Not Powertools' `append_keys`: its
    keys are the process's, and the local stack runs many functions' invocations in one process at once."""
    log_for_task(task_id)


#: Set by the Lambda runtime (and its emulator) only: the local stack, which runs the handlers inside a CLI
#: (or a test runner) that owns its descriptors, leaves them alone.
_LAMBDA_RUNTIME = "AWS_LAMBDA_RUNTIME_API"


def redacted_output(handler: Handler) -> Handler:
    """`handler` with what the process prints masked at its descriptors (in Lambda), and flushed, masked,
    when each invocation ends."""

    @functools.wraps(handler)
    def redacted(event: Any, context: Any) -> Any:
        redaction.install()
        if _LAMBDA_RUNTIME in os.environ:
            fd_redaction.install()
        try:
            return handler(event, context)
        finally:
            end_task()  # the next invocation of this container logs under its own task, or none
            fd_redaction.flush()

    return cast("Handler", redacted)


#: Where API Gateway's proxy events carry the request id Powertools logs as the correlation id.
API_REQUEST_ID = "requestContext.requestId"


def lambda_handler(*, correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    """Every handler's one decorator: output masked at the descriptors (outermost, so it flushes after
    Powertools prints its metrics), Logger's Lambda context (and correlation id, for API events), Metrics
    published, and the Tracer where tracing is on."""

    def decorate(handler: Handler) -> Handler:
        traced = metrics.log_metrics(capture_lambda_handler(handler))
        logged = logger.inject_lambda_context(traced, correlation_id_path=correlation_id_path)
        return redacted_output(cast("Handler", logged))

    return decorate
