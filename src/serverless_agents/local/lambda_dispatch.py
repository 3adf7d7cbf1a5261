"""Run moto's Lambda invocations in this process: the function's handler string is imported and called.

moto invokes Lambdas in Docker, which this project cannot rely on. Its Docker-free backend
(`LambdaSimpleBackend`, chosen by `mock_aws(config={"lambda": {"use_docker": False}})`) answers every
invoke with a canned reply; we replace its `invoke` with one that calls the real handler, the way the
Lambda Python runtime does: the handler's environment bound (see `settings.lambda_environment`), a
context object, and an unhandled exception reported as `{"errorType", "errorMessage"}` with the
`Unhandled` function error, so Step Functions' Retry and Catch see what they would see on AWS.
The handler string (`functions.<role>.handler.handler`) is resolved by `handlers.entry_point` to the
library module that the repository's `functions/<role>/handler.py` re-exports: an installed wheel has no
`functions` package.

This reaches into moto's internals, so moto is pinned (pyproject.toml) and `install` refuses any other
version; tests/functional/test_local_dispatch.py fails loudly if the hook stops taking effect.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Literal

from serverless_agents.deployment.naming import function_log_group
from serverless_agents.handlers import entry_point
from serverless_agents.runtime.settings import lambda_environment

if TYPE_CHECKING:
    from serverless_agents.local.log_capture import LogCapture

PINNED_MOTO = "5.2.5"
logger = logging.getLogger(__name__)

Fault = Literal["throttle", "service_error", "crash"]


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = function_log_group(self.function_name)
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class InProcessLambdas:
    """The hook, with fault injection: queue throttles, service errors or crashes for a function."""

    def __init__(self, resolve: Callable[[str], tuple[str, str]] = entry_point) -> None:
        """`resolve`: handler string -> (module, attribute); by default this project's functions only
        (`handlers.entry_point`). Tests running functions of their own pass another."""
        self._resolve = resolve
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        # One warm container per function: Lambda never runs two invocations in one container at once,
        # and handlers rely on it (Powertools' resolver keeps the current request on the app object).
        self._containers: dict[str, threading.Lock] = defaultdict(threading.Lock)
        #: Functions whose invocations may overlap, each in a container of its own, as Lambda scales out:
        #: an async agent's get function that also receives its job's events (one may come while a get
        #: runs). Their handlers keep no request on shared objects.
        self.scale_out: set[str] = set()
        self._original: Any = None
        self.invocations: dict[str, int] = defaultdict(int)
        #: Called with the event before a function's handler runs: local set-up AWS would not need.
        self.before_invoke: dict[str, Callable[[Any], None]] = {}
        #: Where each invocation's log records go (its function's log group), once the stack set it.
        self.log_capture: LogCapture | None = None

    def install(self) -> None:
        if version("moto") != PINNED_MOTO:
            raise RuntimeError(
                f"the in-process Lambda hook is written for moto {PINNED_MOTO}, found {version('moto')}: "
                "pin moto back or update serverless_agents/local/lambda_dispatch.py"
            )
        from moto.awslambda_simple.models import LambdaSimpleBackend

        if self._original is not None:
            return
        self._original = LambdaSimpleBackend.__dict__["invoke"]
        dispatcher = self

        def invoke(
            backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response: Any
        ) -> bytes:
            return dispatcher.invoke(backend, function_name, qualifier, body, headers, response)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign, assignment]

    def uninstall(self, drain_seconds: float = 5.0) -> None:
        """Restore moto's own Lambda, once the invocations under way (up to `drain_seconds`) have answered:
        a handler still running when the emulator stops would send its AWS calls to the real endpoints."""
        if self._original is None:
            return
        with self._lock:
            containers = list(self._containers.values())
        deadline = time.monotonic() + drain_seconds
        for container in containers:
            if container.acquire(timeout=max(0.0, deadline - time.monotonic())):
                container.release()
        from moto.awslambda_simple.models import LambdaSimpleBackend

        LambdaSimpleBackend.invoke = self._original  # type: ignore[method-assign]
        self._original = None

    def inject_fault(self, function_name: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults[function_name].extend([fault] * times)

    def invoke(
        self,
        backend: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        fn = backend.get_function(function_name, qualifier)
        with self._lock:
            self.invocations[fn.function_name] += 1
            fault = self._faults[fn.function_name].popleft() if self._faults[fn.function_name] else None
        if fault is not None:
            return self._fail(fault, fn.function_name, response_headers)
        event = json.loads(body) if body else {}
        if (prepare := self.before_invoke.get(fn.function_name)) is not None:
            prepare(event)
        if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
            threading.Thread(target=self._call_async, args=(fn, event), daemon=True).start()
            return b""
        payload, errored = self._call_in_container(fn, event)
        if errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    def _call_in_container(self, fn: Any, event: Any) -> tuple[bytes, bool]:
        if fn.function_name in self.scale_out:
            return self._call(fn, event)
        with self._lock:
            container = self._containers[fn.function_name]
        with container:
            return self._call(fn, event)

    def _call_async(self, fn: Any, event: Any) -> None:
        # Nobody waits for an asynchronous invocation's answer; Lambda would log its failure, so do we.
        payload, errored = self._call_in_container(fn, event)
        if errored:
            logger.warning("asynchronous invocation of %s failed: %s", fn.function_name, error_line(payload))
            logger.debug("its answer: %s", payload[:4000])

    def _call(self, fn: Any, event: Any) -> tuple[bytes, bool]:
        context = LocalLambdaContext(
            function_name=fn.function_name,
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size),
            timeout_seconds=int(fn.timeout),
        )
        try:
            # As the Lambda runtime does, tell the function its region.
            region = str(fn.function_arn).split(":")[3]
            runtime_env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
            captured = (
                self.log_capture.invocation(fn.function_name, context.aws_request_id)
                if self.log_capture is not None
                else contextlib.nullcontext()
            )
            with lambda_environment({**dict(fn.environment_vars), **runtime_env}), captured:
                module_name, attr = self._resolve(str(fn.handler))
                handler = getattr(importlib.import_module(module_name), attr)
                result = handler(event, context)
            return json.dumps(result).encode(), False
        except Exception as e:
            error = {
                "errorMessage": str(e),
                "errorType": type(e).__name__,
                "stackTrace": traceback.format_tb(e.__traceback__),
            }
            return json.dumps(error).encode(), True
        finally:
            _discard_unpublished_metrics()

    @staticmethod
    def _fail(fault: Fault, function_name: str, response_headers: dict[str, str]) -> bytes:
        from moto.awslambda.exceptions import LambdaClientError

        if fault == "throttle":
            error = LambdaClientError("TooManyRequestsException", f"Rate exceeded for {function_name}")
            error.code = 429
            raise error
        if fault == "service_error":
            error = LambdaClientError("ServiceException", "Lambda was unable to run the function")
            error.code = 500
            raise error
        # A crash: the runtime died before the handler answered (out of memory, a segfault).
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {"errorType": "Runtime.ExitError", "errorMessage": "RequestId: local Error: Runtime exited"}
        ).encode()


def _discard_unpublished_metrics() -> None:
    """With metrics disabled (locally), Powertools never clears them, and all functions in this process
    share one store: it fills up until Powertools prints it anyway. Each Lambda container has its own."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true"):
        from aws_lambda_powertools import Metrics

        Metrics().clear_metrics()


def error_line(payload: bytes) -> str:
    """A failed invocation's answer (`{"errorType", "errorMessage", "stackTrace"}`) as one line."""
    try:
        answer = json.loads(payload)
        return f"{answer['errorType']}: {' '.join(str(answer['errorMessage']).split())}"
    except (ValueError, TypeError, KeyError):
        return " ".join(payload[:500].decode(errors="replace").split())
