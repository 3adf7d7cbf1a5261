"""FileSensor paths a task author chooses, through the deployed path (HTTP API and adapter on the local
stack), as an insider would try them (#19, findings 4, 6 and 12): refused at create with a 400 /
INVALID_ARGUMENT naming `inputs.path`, nothing written, no poke run, no connection attempted."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flytekit.sensor.file_sensor import FileSensor as FlytekitFileSensor
from google.protobuf.json_format import MessageToJson

from serverless_agents.adapter.server import Adapter
from tests.functional.flyte_tasks import create_request
from tests.functional.hostile import assert_nothing_written, holdings
from tests.functional.sensors import SensorHarness, sensor_stack

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def sensors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorHarness]:
    yield from sensor_stack(tmp_path_factory.mktemp("insider-paths"), schedule_period=None)


@pytest.fixture
def remote_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Connections to anything but loopback, recorded and refused (the stack itself talks on 127.0.0.1)."""
    attempted: list[Any] = []
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempted.append(address)
            raise OSError("the test forbids remote connections")
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempted


_runs = iter(range(100_000))


def _post(harness: SensorHarness, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{harness.stack.api_url}/v1/tasks",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _file_task_body(path: Any) -> bytes:
    sensor = FlytekitFileSensor(name=f"flytesnacks.sensors.insider{next(_runs)}")
    return MessageToJson(create_request(sensor, {"path": path}, f"insider-{next(_runs)}")).encode()


def _poke_invocations(harness: SensorHarness) -> int:
    return int(harness.stack.lambdas.invocations[harness.function("files", "poke")])


@pytest.mark.parametrize(
    "path",
    [
        "ftp://169.254.169.254:80/",
        "simplecache::ftp://10.1.2.3/",
        "file:///etc/hostname",
        "/proc/self/environ",
        "memory://x",
        f"s3://landing/{'k' * 2100}",  # over S3's key limit, and DynamoDB's for the index key it would be
        f"s3://{'b' * 2100}/key",
    ],
)
def test_a_path_a_file_sensor_may_not_open_is_a_400_naming_it(
    sensors: SensorHarness, remote_connections: list[Any], path: str
) -> None:
    before, pokes = holdings(sensors.stack), _poke_invocations(sensors)

    status, body = _post(sensors, _file_task_body(path))

    assert status == 400, body
    assert body["error"]["field"] == "inputs.path"
    assert_nothing_written(before, holdings(sensors.stack), set())
    assert _poke_invocations(sensors) == pokes
    assert remote_connections == []


def test_a_path_typed_integer_is_a_400_naming_it(sensors: SensorHarness) -> None:
    from serverless_agents.testing import task_request

    custom = {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor"}
    request = task_request("sensor", {"path": 42}, {}, custom, execution=f"insider-int-{next(_runs)}")
    before = holdings(sensors.stack)

    status, body = _post(sensors, MessageToJson(request).encode())

    assert status == 400, body
    assert body["error"]["field"] == "inputs.path"
    assert "STRING" in body["error"]["message"]
    assert_nothing_written(before, holdings(sensors.stack), set())


def test_an_over_long_key_is_invalid_argument_through_the_adapter(sensors: SensorHarness) -> None:
    import grpc
    from flyteidl.service import agent_pb2_grpc

    adapter = Adapter(sensors.stack.api_url, host="127.0.0.1", port=0).start()
    channel = grpc.insecure_channel(adapter.address)
    try:
        sensor = FlytekitFileSensor(name="flytesnacks.sensors.insider_long")
        request = create_request(sensor, {"path": f"s3://landing/{'k' * 2100}"}, "insider-long")
        with pytest.raises(grpc.RpcError) as refused:
            agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask(request, timeout=30)
    finally:
        channel.close()
        adapter.stop()

    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.path" in (refused.value.details() or "")


class _Server:
    """An HTTP server on 127.0.0.1 answering every GET with `status` (and `location`), recording paths."""

    def __init__(self, status: int, location: str = "") -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                if status == 0:  # hang up without an answer
                    self.close_connection = True
                    return
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_http_path_follows_no_redirect_and_tells_no_failure_from_another() -> None:
    from serverless_agents.agents.file_sensor import FileSensor
    from serverless_agents.exceptions import RetryableAgentError

    target = _Server(200)
    redirect = _Server(302, f"http://127.0.0.1:{target.port}/elsewhere")
    failing, silent = _Server(500), _Server(0)
    sensor = FileSensor(config={"protocols": ["http"], "allow_private_networks": ["127.0.0.0/8"]})
    try:
        assert sensor.poke(f"http://127.0.0.1:{redirect.port}/file.csv") is True  # a 3xx counts as found
        assert redirect.hits == ["/file.csv"]
        assert target.hits == []  # the redirect was not followed

        messages = set()
        for port in (_closed_port(), failing.port, silent.port):
            with pytest.raises(RetryableAgentError) as failed:
                sensor.poke(f"http://127.0.0.1:{port}/file.csv")
            messages.add(str(failed.value))
    finally:
        for server in (target, redirect, failing, silent):
            server.close()

    assert messages == {"cannot tell whether the path exists: its filesystem did not answer"}
