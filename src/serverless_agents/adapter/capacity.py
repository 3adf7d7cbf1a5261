"""Bounded work for any caller: no caller takes every thread, and health and discovery still answer.

grpc's Python server runs every call on one thread pool, and queues what finds no free thread, without
end: 34 ExecuteTaskSync streams that never finish held every thread, and ListAgents and the health check
(the liveness probe: the pod would be restarted) waited behind them. So the pool has `workers` threads
for work (CreateTask, GetTask, DeleteTask, ExecuteTaskSync, and any stream), `discovery` more for the
calls propeller and the executor make to route tasks (ListAgents, GetAgent, ListConnectors, GetConnector),
and a few that only the health check's Check can count on. A stream is cancelled once it has lasted
`max_stream_seconds`, so a caller that never ends its stream gives its thread back.

A burst of task calls waits its turn, within its deadline. Flyte 2's executor reconciles up to 512 task
actions at once (executor/pkg/config/config.go, `MaxConcurrentReconciles`), nothing in between limits
its CreateTask calls (its resource manager grants every allocation: executor/pkg/plugin/
resource_manager.go; the webapi `WriteRateLimiter` is configured but never applied), and any error from
Create, RESOURCE_EXHAUSTED included, fails the attempt (`launch` in flyteplugins/go/tasks/
pluginmachinery/internal/webapi/launcher.go: `PhaseInfoRetryableFailure`), which costs the task one of
its retries. Answering a legitimate burst RESOURCE_EXHAUSTED would fail tasks that waiting a second
would have served. So a unary task call that finds every worker busy waits for one, in a thread of its
own (`queued` of them, so waiting calls never take the threads health and discovery count on), for as
long as its deadline leaves room to do the work (`min_work_seconds`): it never starts work whose
deadline has passed, and is answered RESOURCE_EXHAUSTED when the room runs out. Streams, calls without
a deadline (nothing says how long they may wait) and calls beyond the queue are answered
RESOURCE_EXHAUSTED at once, as are discovery calls beyond theirs. grpc's own limit on calls in flight
(`maximum_concurrent_rpcs`) bounds what waits in front of the pool.

The checks run in the call's own thread, not in grpc's serving thread (`intercept_service` runs there):
what they cost is a non-blocking semaphore acquire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

#: Threads only the health check can count on: the kubelet's probe and propeller's health checks.
HEALTH_THREADS = 2
#: Task calls that may wait for a worker: the executor's whole reconcile burst (MaxConcurrentReconciles).
QUEUED_CALLS = 512
#: A waiting call gives up once less than this is left of its deadline: an HTTP call to the API takes
#: that long at least, and one that cannot finish should not start.
MIN_WORK_SECONDS = 0.5
#: Answered without a slot: a lookup of a status in memory.
_CHEAP = frozenset({"/grpc.health.v1.Health/Check"})
_DISCOVERY = frozenset(
    {
        "/flyteidl.service.AgentMetadataService/ListAgents",
        "/flyteidl.service.AgentMetadataService/GetAgent",
        "/flyteidl2.connector.ConnectorMetadataService/ListConnectors",
        "/flyteidl2.connector.ConnectorMetadataService/GetConnector",
    }
)


#: grpc reports a call without a deadline as one that far away (its infinite future), not as None.
_NO_DEADLINE = 1e9


def time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds left of the call's deadline; None when the caller set none."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE else float(remaining)


class _Slots:
    """`size` calls at once; with `queued`, as many more may wait for one of them within their deadline."""

    def __init__(self, size: int, what: str, queued: int = 0, min_work_seconds: float = 0.0) -> None:
        self._free = threading.BoundedSemaphore(size)
        self._waiting = threading.BoundedSemaphore(queued) if queued else None
        self._min_work_seconds = min_work_seconds
        self.full = f"the adapter is serving its limit of {size} concurrent {what}: retry"
        self.late = f"waited for one until less than {min_work_seconds:g} s of the call's deadline was left"

    @contextmanager
    def held(self, context: grpc.ServicerContext, may_wait: bool = False) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            waited = self._wait(context) if may_wait else None
            if waited is None:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.full)
            elif waited is False:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{self.full} ({self.late})")
        try:
            yield
        finally:
            self._free.release()

    def _wait(self, context: grpc.ServicerContext) -> bool | None:
        """Wait for a slot while the call's deadline leaves room for its work: True once it has one,
        False when the room ran out, None when the call may not wait (no deadline, the queue full)."""
        remaining = time_left(context)
        if remaining is None or self._waiting is None or not self._waiting.acquire(blocking=False):
            return None
        try:
            patience = remaining - self._min_work_seconds
            return patience > 0 and self._free.acquire(timeout=patience)
        finally:
            self._waiting.release()


class Capacity(grpc.ServerInterceptor):
    """Slots per class of call, a queue for task calls, a bound on streams; `threads` is the pool the
    server needs for them."""

    def __init__(
        self,
        workers: int,
        discovery: int,
        max_stream_seconds: float,
        queued: int = QUEUED_CALLS,
        min_work_seconds: float = MIN_WORK_SECONDS,
    ) -> None:
        self._work = _Slots(workers, "task calls and streams (--workers)", queued, min_work_seconds)
        self._discovery = _Slots(discovery, "discovery calls (ListAgents, GetAgent, ...)")
        self._max_stream_seconds = max_stream_seconds
        self.threads = workers + queued + discovery + HEALTH_THREADS

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method in _CHEAP:
            return handler
        slots = self._discovery if details.method in _DISCOVERY else self._work
        streaming = handler.request_streaming or handler.response_streaming
        behavior = behavior_of(handler)
        if handler.response_streaming:

            def bounded_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with slots.held(context), self._bounded(context, streaming):
                    yield from behavior(request, context)

            return with_behavior(handler, bounded_stream)

        def bounded(request: Any, context: grpc.ServicerContext) -> Any:
            with slots.held(context, may_wait=not streaming), self._bounded(context, streaming):
                return behavior(request, context)

        return with_behavior(handler, bounded)

    @contextmanager
    def _bounded(self, context: grpc.ServicerContext, streaming: bool) -> Iterator[None]:
        """A stream is cancelled after `max_stream_seconds`: that wakes a handler waiting for the caller's
        next message (an `RpcError` from the request iterator), which ends quietly here."""
        if not streaming:
            yield
            return
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            context.cancel()

        timer = threading.Timer(self._max_stream_seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except grpc.RpcError:
            if not expired.is_set():
                raise  # not the bound's doing
        finally:
            timer.cancel()


def behavior_of(handler: grpc.RpcMethodHandler[Any, Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    """The one behavior a method handler has, whichever kind it is."""
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream  # type: ignore[return-value]


def with_behavior(
    handler: grpc.RpcMethodHandler[Any, Any],
    behavior: Callable[[Any, grpc.ServicerContext], Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` of the same kind (unary or streaming, each way) with another behavior, for interceptors."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
