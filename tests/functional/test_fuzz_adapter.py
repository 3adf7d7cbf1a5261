"""Property-based fuzzing of the adapter's three gRPC services through flyteidl's own stubs (the clients
flytepropeller makes in flyteplugins/go/tasks/plugins/webapi/agent/client.go and calls in plugin.go: Create,
Get and Delete with `resource_meta` handed back as it was issued), in front of the local stack:
random and ill-formed requests, literals outside what JSON can carry, and garbage `resource_meta` never
get INTERNAL or UNKNOWN, every error is one line (INVALID_ARGUMENT as `field: problem`), and a rejected call
writes nothing. The regressions the fuzzing started from are explicit tests at the end.

Seeded and sized in tests/functional/hostile.py (`SA_FUZZ_EXAMPLES` runs more).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2 as lit
from flyteidl.core import types_pb2 as types
from hypothesis import event, given
from hypothesis import strategies as st

from serverless_agents.adapter.server import Adapter
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.local.demo import FlyteClient
from tests.functional.conftest import Harness
from tests.functional.hostile import (
    FUZZ,
    assert_nothing_written,
    check_grpc_details,
    holdings,
    literal_types,
    literals,
    typed_request,
)

pytestmark = pytest.mark.functional

_TIMEOUT = 30  # generous: the contract is the status, not the speed, and the machine may be loaded
# Mostly the deployed task types, so most requests get past routing to the checks behind it.
_TASK_TYPES = st.one_of(
    st.sampled_from(["example_job"] * 6 + ["example_echo", "sensor", ""]), st.text(min_size=1, max_size=12)
)


@pytest.fixture(scope="module")
def flyte(harness: Harness) -> Iterator[FlyteClient]:
    adapter = Adapter(harness.stack.api_url, host="127.0.0.1", port=0, call_timeout=_TIMEOUT).start()
    client = FlyteClient(adapter.address)
    yield client
    client.channel.close()
    adapter.stop()


@st.composite
def create_requests(draw: st.DrawFn) -> agent_pb2.CreateTaskRequest:
    """A request as propeller builds it, with a drawn type, interface, inputs and parts left out."""
    request = typed_request(
        draw(_TASK_TYPES),
        draw(literal_types),
        draw(literals(json_safe=False)),
        name=draw(st.text(max_size=8)),
    )
    if draw(st.booleans()):
        request.template.custom.update({draw(st.text(max_size=8)): draw(st.floats() | st.text(max_size=8))})
    left_out = draw(st.sampled_from([None] * 6 + ["template", "task_execution_metadata", "inputs"]))
    if left_out is not None:
        request.ClearField(left_out)
    request.template.task_type_version = draw(st.sampled_from([0] * 8 + [1, -1, 2**31 - 1]))
    request.output_prefix = draw(st.sampled_from(["s3://demo/outputs", ""]) | st.text(max_size=20))
    return request


def _resource_metas() -> st.SearchStrategy[bytes]:
    hostile_ids = st.one_of(
        st.text(max_size=90),
        st.sampled_from(
            ["../../v1/agents", "a/b", "x" * 81, "x" * 70_000, "t1?x=1", "demo-a0-0123456789abcdef"]
        ),
        st.integers() | st.none() | st.lists(st.integers(), max_size=2),
    )
    agents = st.one_of(st.just("job"), st.text(max_size=40), st.integers() | st.none())
    as_json = st.builds(lambda t, a: json.dumps({"task_id": t, "agent": a}).encode(), hostile_ids, agents)
    return st.one_of(st.binary(max_size=300), as_json, st.binary(min_size=2000, max_size=80_000))


def _grpc_call(call: object) -> grpc.StatusCode:
    """Make the call; an error must keep the contract. The code it ended with."""
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as error:
        check_grpc_details(error.code(), error.details())
        event(error.code().name)
        return error.code()
    event("OK")
    return grpc.StatusCode.OK


def test_fuzz_create_task(harness: Harness, flyte: FlyteClient) -> None:
    before, accepted = holdings(harness.stack), set()

    @FUZZ
    @given(create_requests())
    def create(request: agent_pb2.CreateTaskRequest) -> None:
        try:
            response = flyte.tasks.CreateTask(request, timeout=_TIMEOUT)
        except grpc.RpcError as error:
            check_grpc_details(error.code(), error.details())
            event(error.code().name)
            return
        event("OK")
        accepted.add(task_id_from_resource_meta(response.resource_meta))

    create()
    assert_nothing_written(before, holdings(harness.stack), accepted)


def test_fuzz_get_and_delete_task(harness: Harness, flyte: FlyteClient) -> None:
    before = holdings(harness.stack)

    @FUZZ
    @given(st.sampled_from(["get", "delete"]), _resource_metas(), _TASK_TYPES, st.integers(-1, 3))
    def get_or_delete(operation: str, resource_meta: bytes, task_type: str, version: int) -> None:
        category = agent_pb2.TaskCategory(name=task_type, version=version)
        if operation == "get":
            request = agent_pb2.GetTaskRequest(task_category=category, resource_meta=resource_meta)
            code = _grpc_call(lambda: flyte.tasks.GetTask(request, timeout=_TIMEOUT))
        else:
            delete = agent_pb2.DeleteTaskRequest(task_category=category, resource_meta=resource_meta)
            code = _grpc_call(lambda: flyte.tasks.DeleteTask(delete, timeout=_TIMEOUT))
        # No task exists in this module's stack but the fuzzed creates', so nothing is found (or, for a
        # delete, nothing needs doing); a bad resource_meta is INVALID_ARGUMENT.
        assert code is not grpc.StatusCode.OK or operation == "delete", resource_meta[:200]

    get_or_delete()
    assert_nothing_written(before, holdings(harness.stack), set())


@st.composite
def sync_streams(draw: st.DrawFn) -> list[agent_pb2.ExecuteTaskSyncRequest]:
    """What a client may put on ExecuteTaskSync's stream: headers and inputs, in any order, or neither."""
    request = draw(create_requests())
    if draw(st.sampled_from([True, True, True, False])):
        request.template.type = "example_echo"
    header = agent_pb2.ExecuteTaskSyncRequest(
        header=agent_pb2.CreateRequestHeader(
            template=request.template,
            output_prefix=request.output_prefix,
            task_execution_metadata=request.task_execution_metadata,
        )
    )
    inputs = agent_pb2.ExecuteTaskSyncRequest(inputs=request.inputs)
    order = draw(
        st.sampled_from([[header, inputs], [header], [inputs, header], [inputs], [], [header, header]])
    )
    return list(order)


def test_fuzz_execute_task_sync(harness: Harness, flyte: FlyteClient) -> None:
    before = holdings(harness.stack)

    @FUZZ
    @given(sync_streams())
    def execute(stream: list[agent_pb2.ExecuteTaskSyncRequest]) -> None:
        _grpc_call(lambda: list(flyte.sync.ExecuteTaskSync(iter(stream), timeout=_TIMEOUT)))

    execute()
    assert_nothing_written(before, holdings(harness.stack), set())


def test_fuzz_agent_metadata(harness: Harness, flyte: FlyteClient) -> None:
    before = holdings(harness.stack)

    @FUZZ
    @given(st.one_of(st.sampled_from(["echo", "job", ""]), st.text(max_size=300)), st.booleans())
    def ask(name: str, listing: bool) -> None:
        if listing:
            assert flyte.metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=_TIMEOUT).agents
            return
        request = agent_pb2.GetAgentRequest(name=name)
        code = _grpc_call(lambda: flyte.metadata.GetAgent(request, timeout=_TIMEOUT))
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)

    ask()
    assert_nothing_written(before, holdings(harness.stack), set())


# --- the regressions ----------------------------------------------------------------------------------------


def _rejected(call: object) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call()  # type: ignore[operator]
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    check_grpc_details(error.value.code(), error.value.details())
    return str(error.value.details())


@pytest.mark.parametrize(
    "primitive",
    [
        lit.Primitive(datetime={"seconds": 10**15}),
        lit.Primitive(datetime={"seconds": 0, "nanos": -1}),
        lit.Primitive(duration={"seconds": 10**15}),
        lit.Primitive(duration={"seconds": 1, "nanos": -5}),
    ],
    ids=["year-31-million", "negative-nanos", "duration-too-long", "duration-sign-mismatch"],
)
def test_out_of_range_time_literals_are_invalid_argument(
    harness: Harness, flyte: FlyteClient, primitive: lit.Primitive
) -> None:
    """Once SerializeToJsonError in the adapter's JSON encoding: INTERNAL."""
    literal_type = types.LiteralType(
        simple=types.DATETIME if primitive.HasField("datetime") else types.DURATION
    )
    request = typed_request("example_job", literal_type, lit.Literal(scalar=lit.Scalar(primitive=primitive)))
    before = holdings(harness.stack)

    details = _rejected(lambda: flyte.tasks.CreateTask(request, timeout=_TIMEOUT))

    assert details.startswith('request.inputs.literals["x"].scalar.primitive.'), details
    assert_nothing_written(before, holdings(harness.stack), set())


def test_unknown_simple_type_is_invalid_argument(flyte: FlyteClient) -> None:
    request = typed_request("example_job", types.LiteralType(simple=99), lit.Literal())
    del request.inputs.literals["x"]  # declared, not sent: the interface itself is refused

    details = _rejected(lambda: flyte.tasks.CreateTask(request, timeout=_TIMEOUT))

    assert details.startswith("template.interface.inputs.x: unknown simple type 99"), details


@pytest.mark.parametrize("operation", ["get", "delete"])
def test_a_70_kb_id_in_resource_meta_is_refused_before_any_url(flyte: FlyteClient, operation: str) -> None:
    """Once an HTTP 414 from the gateway, with its HTML page in the gRPC details."""
    meta = json.dumps({"task_id": "x" * 70_000, "agent": "job"}).encode()

    if operation == "get":
        details = _rejected(lambda: flyte.get(meta, "example_job"))
    else:
        details = _rejected(lambda: flyte.delete(meta, "example_job"))

    assert details.startswith("resource_meta"), details
    assert len(details) < 300


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        (b'{"task_id": "../agents", "agent": "job"}', "resource_meta.task_id"),
        (b'{"task_id": "t1?all=1", "agent": "job"}', "resource_meta.task_id"),
        (b'{"task_id": "t1", "agent": "Job Agent"}', "resource_meta.agent"),
        (b'{"task_id": "t1", "agent": 7}', "resource_meta.agent"),
    ],
)
def test_resource_meta_ids_are_validated(flyte: FlyteClient, meta: bytes, field: str) -> None:
    assert _rejected(lambda: flyte.get(meta, "example_job")).startswith(f"{field}: ")


_METHODS = [
    ("AsyncAgentService", "CreateTask", False),
    ("AsyncAgentService", "GetTask", False),
    ("AsyncAgentService", "DeleteTask", False),
    ("SyncAgentService", "ExecuteTaskSync", True),
    ("AgentMetadataService", "GetAgent", False),
    ("AgentMetadataService", "ListAgents", False),
]


def test_fuzz_bytes_that_are_not_the_message(harness: Harness, flyte: FlyteClient) -> None:
    """What no stub would send but a hostile client can: grpc itself answers INTERNAL when the bytes do not
    parse, unless the adapter takes over (adapter.server.MalformedRequests)."""
    before = holdings(harness.stack)

    @FUZZ
    @given(st.sampled_from(_METHODS), st.lists(st.binary(max_size=64), min_size=1, max_size=3))
    def send(method: tuple[str, str, bool], messages: list[bytes]) -> None:
        service, name, streaming = method
        path = f"/flyteidl.service.{service}/{name}"
        if streaming:
            call = flyte.channel.stream_stream(path, request_serializer=bytes, response_deserializer=bytes)
            _grpc_call(lambda: list(call(iter(messages), timeout=_TIMEOUT)))
        else:
            unary = flyte.channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
            _grpc_call(lambda: unary(messages[0], timeout=_TIMEOUT))

    send()
    assert_nothing_written(before, holdings(harness.stack), set())
