"""FileSensor paths as a task author would try them (#19, findings 4, 6 and 12): the boundary between a
template's `path` and what fsspec may open. Only `s3://` by default, other protocols when the manifest
names them, the Lambda's own files and memory never, hosts through the outbound rules, and the failure of
an allowed filesystem told the same way whatever went wrong (no port scanner).

Every test runs with the network and fsspec recorded (`attempts`): nothing may connect, resolve a name or
make an fsspec filesystem unless the test says so.
"""

from __future__ import annotations

import importlib
import socket
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from serverless_agents.agent import BaseSensor, Phase
from serverless_agents.agents.file_sensor import FileSensor
from serverless_agents.aws.payloads import PayloadStore
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.aws.tasks_table import SensorTask, TasksTable, table_definition
from serverless_agents.deployment.manifest import AgentSettings
from serverless_agents.exceptions import InvalidRequest, ManifestError, RetryableAgentError
from serverless_agents.flyte import wire
from serverless_agents.runtime.sensors import (
    SensorRegistration,
    SensorSchedules,
    SensorSteps,
    check_poke_inputs,
    register_sensor_task,
)
from serverless_agents.runtime.translate import task_context
from serverless_agents.testing import task_request

#: What the findings tried, each answered True or by connecting on main.
FOUND = [
    "ftp://169.254.169.254:80/",
    "simplecache::ftp://10.1.2.3/",
    "file:///etc/hostname",
    "/proc/self/environ",
    "memory://anything",
    "local:///etc/passwd",
    "data:text/plain,hello",
    "etc/hostname",
    "simplecache::file:///etc/hostname",
    "zip://x::file:///tmp/a.zip",
]


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Connections, name lookups and fsspec filesystems attempted, each refused (nothing leaves)."""
    seen: list[str] = []

    def refuse(what: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            seen.append(f"{what}{args[1:] if what == 'connect' else args}")
            raise OSError(f"the test forbids {what}")

        return record

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    _patch_fsspec(monkeypatch, refuse("fsspec"))
    return seen


def _patch_fsspec(monkeypatch: pytest.MonkeyPatch, chooser: Any) -> None:
    """Replace where fsspec chooses a filesystem class for a protocol: `fsspec.registry`'s function and
    `fsspec.core`'s own reference to it (`fsspec.registry` the attribute is the registry's dict, so the
    modules are taken from `sys.modules`)."""
    for module in ("fsspec.registry", "fsspec.core"):
        monkeypatch.setattr(importlib.import_module(module), "get_filesystem_class", chooser)


@pytest.mark.parametrize("path", FOUND)
def test_a_path_outside_the_allow_list_is_refused_at_create_naming_the_field(
    path: str, attempts: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_poke_inputs(FileSensor(), {"path": path})

    assert refused.value.field == "inputs.path"
    assert attempts == []


@pytest.mark.parametrize("path", FOUND)
def test_a_path_outside_the_allow_list_is_refused_at_poke_without_opening_anything(
    path: str, attempts: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        FileSensor().poke(path)

    assert refused.value.field == "inputs.path"
    assert attempts == []


@pytest.mark.parametrize(
    "path",
    [
        "ftp://169.254.169.254:80/",  # named protocol, metadata address
        "simplecache::ftp://10.1.2.3/",
        "ftp://127.0.0.1:22/",
        "ftp://[::ffff:169.254.169.254]/",
        "ftp://0x7f.1/",
        "ftp://user:pw@93.184.216.34/",
        "http://2130706433/x",
        "simplecache::http://93.184.216.34/x",  # a wrapper would follow the redirects fsspec is told not to
    ],
)
def test_a_named_protocol_still_reaches_no_private_host(path: str, attempts: list[str]) -> None:
    sensor = FileSensor(config={"protocols": ["ftp", "http", "simplecache"]})

    with pytest.raises(InvalidRequest) as refused:
        sensor.poke(path)

    assert refused.value.field == "inputs.path"
    assert attempts == []


def test_a_host_name_is_checked_by_what_it_resolves_to(
    attempts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: [(0, 0, 0, "", ("10.0.0.7", 21))])
    sensor = FileSensor(config={"protocols": ["ftp"]})

    with pytest.raises(InvalidRequest, match="private address"):
        sensor.poke("ftp://files.internal.example/report.csv")
    assert attempts == []


def test_allowed_hosts_bound_a_named_protocol(attempts: list[str]) -> None:
    sensor = FileSensor(config={"protocols": ["https"], "allowed_hosts": ["data.example.org"]})

    with pytest.raises(InvalidRequest, match="allowed_hosts"):
        sensor.check_inputs(path="https://93.184.216.34/x")
    assert attempts == []


@pytest.mark.parametrize(
    "error", [ConnectionRefusedError(111, "Connection refused"), TimeoutError("timed out"), socket.gaierror()]
)
def test_an_allowed_filesystem_that_fails_says_the_same_whatever_failed(
    error: OSError, attempts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreachable:
        protocol = "ftp"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise error

        @classmethod
        def _get_kwargs_from_urls(cls, path: str) -> dict[str, Any]:
            return {}

        @classmethod
        def _strip_protocol(cls, path: str) -> str:
            return path

    _patch_fsspec(monkeypatch, lambda protocol: Unreachable)
    sensor = FileSensor(config={"protocols": ["ftp"]})

    with pytest.raises(RetryableAgentError) as failed:
        sensor.poke("ftp://93.184.216.34/report.csv")

    assert str(failed.value) == "cannot tell whether the path exists: its filesystem did not answer"
    assert attempts == []


@pytest.mark.parametrize("protocols", [["file"], ["memory"], ["local"], ["data"], ["Not A Name"], "gcs"])
def test_the_manifest_cannot_allow_a_local_protocol(protocols: Any) -> None:
    with pytest.raises(ManifestError, match=r"config\.protocols"):
        FileSensor(config={"protocols": protocols})


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (f"s3://bucket/{'k' * 2100}", "over S3's 1024"),
        (f"s3://bucket/{'é' * 513}", "over S3's 1024"),  # 1,026 bytes in UTF-8
        (f"s3://{'b' * 300}/key", "at most 255"),
        ("s3://bucket/" + "k" * 5000, "over 4096"),
    ],
)
def test_a_key_longer_than_s3s_is_refused_at_create(path: str, problem: str, attempts: list[str]) -> None:
    with pytest.raises(InvalidRequest, match=problem) as refused:
        check_poke_inputs(FileSensor(), {"path": path})

    assert refused.value.field == "inputs.path"


@pytest.mark.parametrize("value", [7, 1.5, True, None, ["s3://b/k"]])
def test_a_path_typed_other_than_string_is_refused_at_create(value: Any, attempts: list[str]) -> None:
    with pytest.raises(InvalidRequest, match=r"STRING|a string") as refused:
        check_poke_inputs(FileSensor(), {"path": value})

    assert refused.value.field == "inputs.path"


def test_an_s3_key_holding_a_double_colon_is_a_key_not_a_chain(attempts: list[str]) -> None:
    check_poke_inputs(FileSensor(), {"path": "s3://landing/a::file:///etc/hostname"})

    assert attempts == []


def test_an_s3_path_passes_and_is_its_own_watch_key(attempts: list[str]) -> None:
    sensor = FileSensor()

    check_poke_inputs(sensor, {"path": "s3://landing/incoming/day 1?.csv"})

    assert sensor.watch_key(path="s3://landing/incoming/day 1?.csv") == "s3://landing/incoming/day 1?.csv"
    assert attempts == []


# --- hostile paths, seeded ----------------------------------------------------------------------------------

_PROTOCOLS = st.sampled_from(
    ["s3", "S3", "file", "local", "memory", "data", "ftp", "http", "https", "gcs", "simplecache", "filecache",
     "blockcache", "zip", "tar", "reference", "dir", "sftp", "smb", "s3a", "\uff533", "s\u200b3", "%73%33",
     ""]
)  # fmt: skip
_HOSTS = st.sampled_from(
    ["169.254.169.254", "169.254.169.254:80", "10.1.2.3", "127.0.0.1:22", "[::1]", "[fd00:ec2::254]",
     "0x7f.1", "2130706433", "localhost", "bucket", "user@10.0.0.1", "%31%30.0.0.1", "", "..", "b" * 300]
)  # fmt: skip
_TAILS = st.one_of(
    st.sampled_from(["/", "/etc/hostname", "/proc/self/environ", "/../../etc/passwd", "/%2e%2e/", "/\x00"]),
    st.text(max_size=30).map(lambda t: "/" + t),
    st.integers(min_value=1000, max_value=6000).map(lambda n: "/" + "k" * n),
)
_SEPARATORS = st.sampled_from(["://", ":", ":/", ":///", "::", "\uff1a//", ":\uff0f/", "://\u200b"])
_LINKS = st.builds(lambda p, s, h, t: f"{p}{s}{h}{t}", _PROTOCOLS, _SEPARATORS, _HOSTS, _TAILS)
HOSTILE_PATHS = st.one_of(
    st.sampled_from(FOUND),
    st.lists(_LINKS, min_size=1, max_size=4).map("::".join),
    st.lists(st.one_of(_PROTOCOLS, _LINKS), min_size=2, max_size=4).map("::".join),
    st.text(max_size=60),
    _TAILS,
    st.builds(lambda t: f"s3://landing{t}", _TAILS),
)


@settings(max_examples=600, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(path=HOSTILE_PATHS)
def test_no_hostile_path_passes_but_a_plain_s3_one(path: str, attempts: list[str]) -> None:
    _, refused = _outcome(lambda: check_poke_inputs(FileSensor(), {"path": path}))

    if refused is not None:
        assert refused.field == "inputs.path"
        assert len(str(refused)) < 400  # quotes the path's start, never the megabytes of it
    else:
        assert path.startswith("s3://")  # read with boto3 alone: a `::` in it is part of the key
        _, key = parse_s3_uri(path)
        assert len(key.encode()) <= 1024
        assert len(path.encode()) <= 2048  # the `watch` key DynamoDB indexes
    assert attempts == []


def _outcome(check: Callable[[], Any]) -> tuple[Any, InvalidRequest | None]:
    """What `check` returned, or the InvalidRequest it raised."""
    try:
        return check(), None
    except InvalidRequest as e:
        return None, e


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(path=HOSTILE_PATHS)
def test_with_network_protocols_named_no_path_reaches_a_private_address(
    path: str, attempts: list[str]
) -> None:
    sensor = FileSensor(config={"protocols": ["ftp", "http", "https", "sftp", "simplecache", "zip"]})
    _, refused = _outcome(lambda: sensor.check_inputs(path=path))

    if refused is not None:
        assert refused.field == "inputs.path"
    else:
        # A name is resolved (refused here: `attempts`), so it passes to the poke, which resolves it
        # again; a literal address passes only if it is public, and no link is local.
        for link in path.split("::"):
            protocol, _, rest = link.partition("://")
            assert protocol in {"ftp", "http", "https", "sftp", "simplecache", "zip", "s3"}
            if protocol in {"ftp", "http", "https", "sftp"}:
                assert not rest.startswith(_PRIVATE_AUTHORITIES), link
        assert not path.split("::")[-1].startswith(("simplecache", "zip"))
    assert [a for a in attempts if not a.startswith("getaddrinfo")] == []


_PRIVATE_AUTHORITIES = (
    "169.254.169.254", "10.1.2.3", "127.0.0.1", "[::1]", "[fd00:ec2::254]", "0x7f.1", "2130706433", "user@",
    "%31",
)  # fmt: skip


# --- any sensor's watch key: the tasks table's index key, bounded before anything is written ----------------


class KeyedSensor(BaseSensor):
    """Watches whatever its input names: a custom sensor as a task author would feed it."""

    task_type = "keyed_sensor"

    def poke(self, key: str) -> bool:
        return False

    def watch_key(self, **inputs: Any) -> str | None:
        return str(inputs["key"])


@pytest.mark.parametrize("key", ["k" * 2049, "é" * 1025])
def test_a_watch_key_the_index_cannot_hold_is_refused_before_any_write(key: str) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("tasks"))
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="payloads")
        request = task_request("keyed_sensor", {"key": key}, {}, execution="keyed")
        registration = SensorRegistration(
            SensorSchedules("g", boto3.client("scheduler", region_name="us-east-1")),
            "rate(1 minute)",
            "arn:aws:lambda:us-east-1:123456789012:function:sa-keyed-poke",
            "arn:aws:iam::123456789012:role/scheduler",
            boto3.client("lambda", region_name="us-east-1"),
        )

        with pytest.raises(InvalidRequest, match="2048") as refused:
            register_sensor_task(
                TasksTable("tasks", client=dynamodb),
                PayloadStore("payloads", client=s3),
                registration,
                "keyed",
                KeyedSensor(),
                AgentSettings.model_validate({"class": "m:C"}),
                task_context("t-keyed", request),
                request,
            )

        assert refused.value.field == "inputs"
        assert dynamodb.scan(TableName="tasks")["Items"] == []
        assert s3.list_objects_v2(Bucket="payloads").get("KeyCount", 0) == 0


class RefusingSensor(KeyedSensor):
    """A sensor whose poke finds the task's own inputs refused (an allow-list narrowed since the create)."""

    def poke(self, key: str) -> bool:
        raise InvalidRequest("inputs.key", "no longer allowed")


def test_a_poke_refusing_the_tasks_inputs_ends_it_failed_at_once() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**table_definition("tasks"))
        table = TasksTable("tasks", client=dynamodb)
        request = task_request("keyed_sensor", {"key": "k"}, {}, execution="refused")
        table.create(
            SensorTask(
                "t-refused",
                "keyed",
                phase=Phase.RUNNING,
                request=wire.to_dict(request),
                deadline=time.time() + 3600,
            )
        )
        settings = AgentSettings.model_validate({"class": "m:C", "max_poke_errors": 3})
        schedules = SensorSchedules("g", boto3.client("scheduler", region_name="us-east-1"))
        s3 = boto3.client("s3", region_name="us-east-1")
        payloads = PayloadStore("payloads", client=s3)
        steps = SensorSteps("keyed", RefusingSensor(), settings, table, payloads, schedules)

        assert steps.poke("t-refused") == "FAILED"  # the first poke, not the third
        assert table.get("t-refused").message == "InvalidRequest: inputs.key: no longer allowed"
