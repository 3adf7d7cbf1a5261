"""The adapter's gRPC server: Flyte 1's three agent services and Flyte 2's two connector services on one
port, `grpc.health.v1`, and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from flyteidl.service import agent_pb2, agent_pb2_grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serverless_agents.adapter.flyte2 import SERVICE_NAMES as FLYTE2_SERVICE_NAMES
from serverless_agents.adapter.flyte2 import add_flyte2_services
from serverless_agents.adapter.metrics import AdapterMetrics
from serverless_agents.adapter.servicers import (
    AgentDirectory,
    AgentMetadataServicer,
    ApiCalls,
    AsyncAgentServicer,
    SyncAgentServicer,
)
from serverless_agents.client import ApiClient
from serverless_agents.exceptions import cannot_listen

_SERVICES = ("AsyncAgentService", "SyncAgentService", "AgentMetadataService")


class _Malformed:
    def __init__(self, error: Exception) -> None:
        self.error = error


class MalformedRequests(grpc.ServerInterceptor):
    """Bytes that do not parse as the request message are bad input: INVALID_ARGUMENT, not the INTERNAL
    ("Exception deserializing request!") grpc answers by itself. A failed parse travels to the handler as
    a marker, which aborts with protobuf's line naming the message it expected."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def lenient(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as e:
                return _Malformed(e)

        def check(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, _Malformed):
                problem = " ".join(str(request.error).split())
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request: {problem}")
            return request

        def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            return (check(request, context) for request in requests)

        kinds = {
            (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary, check),
            (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream, check),
            (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary, checked),
            (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream, checked),
        }
        make, behavior, guard = kinds[(handler.request_streaming, handler.response_streaming)]
        return make(
            lambda request, context: behavior(guard(request, context), context),
            request_deserializer=lenient,
            response_serializer=handler.response_serializer,
        )


class Adapter:
    """`Adapter(api_url).start()` serves on `port` (0: any free port; see `.port` after start)."""

    def __init__(
        self,
        api_url: str,
        *,
        host: str = "0.0.0.0",
        port: int = 8000,
        metrics_port: int | None = None,
        workers: int = 32,
        call_timeout: float = 10.0,
        api: ApiClient | None = None,
    ) -> None:
        self.api = api or ApiClient(api_url, timeout=call_timeout)
        self.metrics = AdapterMetrics()
        self._host, self._requested_port, self._metrics_port = host, port, metrics_port
        self._workers = workers
        self._call_timeout = call_timeout
        self._server: grpc.Server | None = None
        self._metrics_server: Any = None
        self.port = 0

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "[::]") else self._host
        return f"{host}:{self.port}"

    def start(self) -> Adapter:
        calls = ApiCalls(self.api, self.metrics, self._call_timeout)
        agents = AgentDirectory()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._workers), interceptors=[MalformedRequests()]
        )
        agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(AsyncAgentServicer(calls), server)
        agent_pb2_grpc.add_SyncAgentServiceServicer_to_server(SyncAgentServicer(calls, agents), server)
        agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(
            AgentMetadataServicer(calls, agents), server
        )
        add_flyte2_services(server, calls, agents)
        health_servicer = health.HealthServicer()
        for name in _SERVICES:
            health_servicer.set(
                agent_pb2.DESCRIPTOR.services_by_name[name].full_name, health_pb2.HealthCheckResponse.SERVING
            )
        for full_name in FLYTE2_SERVICE_NAMES:
            health_servicer.set(full_name, health_pb2.HealthCheckResponse.SERVING)
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        address = f"{self._host}:{self._requested_port}"
        try:
            # grpcio raises RuntimeError for a port in use (older releases returned 0)
            self.port = server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            flag = "port (up: --grpc-port; adapter: --port)"
            raise cannot_listen("the gRPC adapter", address, "the address is in use or not available", flag)
        server.start()
        self._server = server
        if self._metrics_port is not None:
            from prometheus_client import start_http_server

            self._metrics_server, _ = start_http_server(self._metrics_port, registry=self.metrics.registry)
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()
