"""The adapter's gRPC server: Flyte 1's three agent services and Flyte 2's two connector services on one
port (plain, or TLS), `grpc.health.v1`, and Prometheus metrics.

Any pod that reaches the port is a caller, so nothing a caller does may take the server down: calls are
bounded per class with threads kept for health and discovery (`capacity.Capacity`), metric labels come from
the deployed task types only (`metrics`), and a `resource_meta` is trusted only with this adapter's
signature (`serverless_agents.flyte.resource_meta`). With TLS, `health_port` serves `grpc.health.v1` alone in
plain gRPC for the kubelet, whose gRPC probes speak no TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from flyteidl.service import agent_pb2, agent_pb2_grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serverless_agents.adapter.capacity import QUEUED_CALLS, Capacity, behavior_of, with_behavior
from serverless_agents.adapter.connector_services import SERVICE_NAMES as FLYTE2_SERVICE_NAMES
from serverless_agents.adapter.connector_services import add_flyte2_services
from serverless_agents.adapter.metrics import AdapterMetrics
from serverless_agents.adapter.servicers import (
    AgentDirectory,
    AgentMetadataServicer,
    ApiCalls,
    AsyncAgentServicer,
    SyncAgentServicer,
)
from serverless_agents.api.client import ApiClient
from serverless_agents.exceptions import cannot_listen
from serverless_agents.flyte.resource_meta import ResourceMetaKeys
from serverless_agents.security import redaction

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

        behavior = behavior_of(handler)
        guard = checked if handler.request_streaming else check
        return with_behavior(
            handler,
            lambda request, context: behavior(guard(request, context), context),
            request_deserializer=lenient,
        )


#: grpc's own bound on calls in flight (running or waiting for a thread), per thread of the pool: enough for
#: bursts that `Capacity` answers at once, while what waits cannot grow without end.
_CALLS_IN_FLIGHT_PER_THREAD = 4


class Adapter:
    """`Adapter(api_url).start()` serves on `port` (0: any free port; see `.port` after start).

    `keys` sign and verify `resource_meta`; without them a random key serves this process only (the local
    stack, tests): replicas that share tasks need the same keys (`ResourceMetaKeys.from_environment`).
    `tls` is a (certificate chain, private key) pair in PEM.
    """

    def __init__(
        self,
        api_url: str,
        *,
        host: str = "0.0.0.0",
        port: int = 8000,
        metrics_port: int | None = None,
        workers: int = 32,
        queued_calls: int = QUEUED_CALLS,
        discovery_workers: int = 4,
        max_stream_seconds: float = 60.0,
        call_timeout: float = 10.0,
        keys: ResourceMetaKeys | None = None,
        tls: tuple[bytes, bytes] | None = None,
        health_port: int | None = None,
        api: ApiClient | None = None,
    ) -> None:
        # A connection per worker: no call waits for one, and none is opened only to be thrown away.
        self.api = api or ApiClient(api_url, timeout=call_timeout, connections=workers)
        self.metrics = AdapterMetrics()
        self.keys = keys or ResourceMetaKeys.random()
        self._host, self._requested_port, self._metrics_port = host, port, metrics_port
        self._capacity = Capacity(workers, discovery_workers, max_stream_seconds, queued_calls)
        self._call_timeout = call_timeout
        self._tls = tls
        self._health_port = health_port
        self._servers: list[grpc.Server] = []
        self._metrics_server: Any = None
        self.port = 0
        self.health_port = 0

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "[::]") else self._host
        return f"{host}:{self.port}"

    def start(self) -> Adapter:
        # Flyte 2's Connection secrets pass through this process (`flyte2.AsyncConnectorServicer`): what
        # it logs and prints is masked from the start.
        redaction.install()
        agents = AgentDirectory()
        calls = ApiCalls(self.api, self.metrics, self._call_timeout, self.keys, agents)
        threads = self._capacity.threads
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads),
            interceptors=[self._capacity, MalformedRequests()],
            maximum_concurrent_rpcs=threads * _CALLS_IN_FLIGHT_PER_THREAD,
        )
        agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(AsyncAgentServicer(calls), server)
        agent_pb2_grpc.add_SyncAgentServiceServicer_to_server(SyncAgentServicer(calls, agents), server)
        agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(
            AgentMetadataServicer(calls, agents), server
        )
        add_flyte2_services(server, calls, agents)
        health_servicer = _health()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        address = f"{self._host}:{self._requested_port}"
        credentials = None
        if self._tls is not None:
            certificate_chain, private_key = self._tls
            credentials = grpc.ssl_server_credentials([(private_key, certificate_chain)])
        flag = "port (up: --grpc-port; adapter: --port)"
        self.port = _bind(server, address, credentials, "the gRPC adapter", flag)
        server.start()
        self._servers.append(server)
        if self._health_port is not None:
            self.health_port = self._serve_health(health_servicer, self._health_port)
        if self._metrics_port is not None:
            from prometheus_client import start_http_server

            self._metrics_server, _ = start_http_server(self._metrics_port, registry=self.metrics.registry)
        return self

    def _serve_health(self, servicer: health.HealthServicer, port: int) -> int:
        """`grpc.health.v1` alone, plain, on its own threads (what the kubelet's gRPC probe can reach)."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2), maximum_concurrent_rpcs=2 * _CALLS_IN_FLIGHT_PER_THREAD
        )
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        bound = _bind(server, f"{self._host}:{port}", None, "the health check", "--health-port")
        server.start()
        self._servers.append(server)
        return bound

    def stop(self, grace: float = 1.0) -> None:
        while self._servers:
            self._servers.pop().stop(grace).wait()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None

    def wait(self) -> None:
        if self._servers:
            self._servers[0].wait_for_termination()


def _health() -> health.HealthServicer:
    servicer = health.HealthServicer()
    for name in _SERVICES:
        servicer.set(
            agent_pb2.DESCRIPTOR.services_by_name[name].full_name, health_pb2.HealthCheckResponse.SERVING
        )
    for full_name in FLYTE2_SERVICE_NAMES:
        servicer.set(full_name, health_pb2.HealthCheckResponse.SERVING)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return servicer


def _bind(
    server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None, what: str, flag: str
) -> int:
    """Listen on `address` (TLS with `credentials`), or say which server could not and the flag to change."""
    try:
        # grpcio raises RuntimeError for an address in use (older releases returned 0)
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise cannot_listen(what, address, "the address is in use or not available", flag)
    return port
