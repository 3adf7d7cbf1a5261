"""Bounded work for any caller: no caller takes every thread, and health and discovery still answer.

grpc's Python server runs every call on one thread pool, and queues what finds no free thread, without
end: 34 ExecuteTaskSync streams that never finish held every thread, and ListAgents and the health check
(the liveness probe: the pod would be restarted) waited behind them. So the pool has `workers` threads
for work (CreateTask, GetTask, DeleteTask, ExecuteTaskSync, and any stream), `discovery` more for the
calls propeller and the executor make to route tasks (ListAgents, GetAgent, ListConnectors, GetConnector),
and a few that only the health check's Check can count on. A call that finds its class full is answered
RESOURCE_EXHAUSTED at once (propeller retries it) rather than queued; grpc's own limit on calls in
flight (`maximum_concurrent_rpcs`) bounds the queue in front of the pool. A stream is cancelled once it
has lasted `max_stream_seconds`, so a caller that never ends its stream gives its thread back.

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


class _Slots:
    def __init__(self, size: int, what: str) -> None:
        self._free = threading.BoundedSemaphore(size)
        self.full = f"the adapter is serving its limit of {size} concurrent {what}: retry"

    @contextmanager
    def held(self, context: grpc.ServicerContext) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.full)
        try:
            yield
        finally:
            self._free.release()


class Capacity(grpc.ServerInterceptor):
    """Slots per class of call, a bound on streams; `threads` is the pool the server needs for them."""

    def __init__(self, workers: int, discovery: int, max_stream_seconds: float) -> None:
        self._work = _Slots(workers, "task calls and streams (--workers)")
        self._discovery = _Slots(discovery, "discovery calls (ListAgents, GetAgent, ...)")
        self._max_stream_seconds = max_stream_seconds
        self.threads = workers + discovery + HEALTH_THREADS

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
            with slots.held(context), self._bounded(context, streaming):
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
