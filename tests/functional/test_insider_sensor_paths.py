"""FileSensor paths a task author chooses, through the deployed path (HTTP API and adapter on the local
stack), as an insider would try them (#19, findings 4, 6 and 12): refused at create with a 400 /
INVALID_ARGUMENT naming `inputs.path`, nothing written, no poke run, no connection attempted."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
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
