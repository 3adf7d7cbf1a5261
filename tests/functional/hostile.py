"""What the fuzz tests share: hypothesis strategies for hostile requests and Flyte literals, the contract
every answer must keep, and a record of what the emulated AWS holds, to prove a rejected request
wrote nothing.

Runs are seeded (`derandomize=True`) and sized by `SA_FUZZ_EXAMPLES` (default 1,000 per test):
`SA_FUZZ_EXAMPLES=20000 pytest tests/functional/test_fuzz_http_api.py` runs more on demand.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2 as lit
from flyteidl.core import types_pb2 as types
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from serverless_agents.deployment.naming import sensor_schedule_name
from serverless_agents.testing import task_request

FUZZ_EXAMPLES = int(os.environ.get("SA_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# Timestamp / Duration ranges protobuf's JSON mapping can write; the adapter's binary path takes any.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_MAX_DURATION = 315_576_000_000
_INT64 = 2**63

# --- hostile JSON -------------------------------------------------------------------------------------------

lone_surrogates = st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
huge_text = st.integers(min_value=1_000, max_value=80_000).map(lambda n: "x" * n)  # over any id or name limit
tricky_text = st.sampled_from(
    ["", " ", "../../etc/passwd", "%2F", "a/b", "\x00", "\u202e", "\ufeff", "NaN", "<html>", "\n\r", "'\""]
)
hostile_text = st.one_of(st.text(max_size=20), tricky_text, lone_surrogates, huge_text)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and infinities included: not JSON, whatever Python's json module writes
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=10,
)


def deep_json(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "open":
        return b"[" * depth
    if kind == "object":
        return b'{"template":' * depth + b"1" + b"}" * depth
    # Valid JSON of a valid shape, only too deep: a collection of collections of ... (built as text, since
    # json.dumps itself recurses).
    literal = b'{"collection": {"literals": [' * depth + b'{"scalar": {"primitive": {"integer": "1"}}}'
    return b'{"inputs": {"literals": {"n": ' + literal + b"]}}" * depth + b"}}}"


deep_bodies = st.builds(
    deep_json,
    st.integers(min_value=90, max_value=60_000),
    st.sampled_from(["array", "open", "object", "literal"]),
)

# --- Flyte literals and types -------------------------------------------------------------------------------

_SIMPLE = [*types.SimpleType.values(), 99, -1]
_FORMATS = st.sampled_from(["", "csv", "parquet", "x" * 300])
_URIS = st.one_of(
    st.sampled_from(["", "s3://bucket/key", "file:///etc/passwd", "gs://b/k/"]), st.text(max_size=30)
)

literal_types: st.SearchStrategy[types.LiteralType] = st.recursive(
    st.one_of(
        st.sampled_from(_SIMPLE).map(lambda s: types.LiteralType(simple=s)),
        st.builds(
            lambda fmt, dims: types.LiteralType(blob=types.BlobType(format=fmt, dimensionality=dims)),
            _FORMATS,
            st.sampled_from([0, 1, 7]),
        ),
        st.lists(st.text(max_size=8), max_size=4).map(
            lambda values: types.LiteralType(enum_type=types.EnumType(values=values))
        ),
        _FORMATS.map(
            lambda fmt: types.LiteralType(structured_dataset_type=types.StructuredDatasetType(format=fmt))
        ),
        st.just(types.LiteralType()),
    ),
    lambda inner: st.one_of(
        inner.map(lambda t: types.LiteralType(collection_type=t)),
        inner.map(lambda t: types.LiteralType(map_value_type=t)),
        st.lists(inner, min_size=1, max_size=3).map(
            lambda variants: types.LiteralType(union_type=types.UnionType(variants=variants))
        ),
    ),
    max_leaves=5,
)


def _timestamps(json_safe: bool) -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    if json_safe:
        seconds, nanos = st.integers(_MIN_SECONDS, _MAX_SECONDS), st.integers(0, 999_999_999)
    else:
        seconds, nanos = st.integers(-(2**62), 2**62), st.integers(-(2**31), 2**31 - 1)
    return st.builds(timestamp_pb2.Timestamp, seconds=seconds, nanos=nanos)


def _durations(json_safe: bool) -> st.SearchStrategy[duration_pb2.Duration]:
    if json_safe:
        return st.builds(
            lambda s, n: duration_pb2.Duration(seconds=s, nanos=n if s >= 0 else -n),
            st.integers(-_MAX_DURATION, _MAX_DURATION),
            st.integers(0, 999_999_999),
        )
    return st.builds(
        duration_pb2.Duration, seconds=st.integers(-(2**62), 2**62), nanos=st.integers(-(2**31), 2**31 - 1)
    )


_finite_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


@functools.cache  # a strategy built once: building one per draw costs more than the draw
def literals(json_safe: bool) -> st.SearchStrategy[lit.Literal]:
    """Literals of every shape, well- and ill-formed; `json_safe` keeps what JSON cannot carry out."""
    primitives = st.one_of(
        st.integers(-_INT64, _INT64 - 1).map(lambda i: lit.Primitive(integer=i)),
        st.floats().map(lambda f: lit.Primitive(float_value=f)),
        st.text(max_size=20).map(lambda s: lit.Primitive(string_value=s)),
        st.booleans().map(lambda b: lit.Primitive(boolean=b)),
        _timestamps(json_safe).map(lambda t: lit.Primitive(datetime=t)),
        _durations(json_safe).map(lambda d: lit.Primitive(duration=d)),
    )
    binaries = st.builds(
        lambda value, tag: lit.Binary(value=value, tag=tag),
        st.one_of(
            st.binary(max_size=40), st.sampled_from([b"\x81\xa1a\x01", b"\xdd\xff\xff\xff\xff", b"\xc1"])
        ),
        st.sampled_from(["", "msgpack", "json"]),
    )
    scalars = st.one_of(
        primitives.map(lambda p: lit.Scalar(primitive=p)),
        st.just(lit.Scalar(none_type=lit.Void())),
        st.builds(
            lambda uri, fmt, dims: lit.Scalar(
                blob=lit.Blob(
                    uri=uri,
                    metadata=lit.BlobMetadata(type=types.BlobType(format=fmt, dimensionality=dims)),
                )
            ),
            _URIS,
            _FORMATS,
            st.sampled_from([0, 1, 5]),
        ),
        binaries.map(lambda b: lit.Scalar(binary=b)),
        st.dictionaries(st.text(max_size=5), _finite_json, max_size=3).map(
            lambda d: lit.Scalar(generic=_struct(d))
        ),
        st.builds(
            lambda uri, fmt: lit.Scalar(
                structured_dataset=lit.StructuredDataset(
                    uri=uri,
                    metadata=lit.StructuredDatasetMetadata(
                        structured_dataset_type=types.StructuredDatasetType(format=fmt)
                    ),
                )
            ),
            _URIS,
            _FORMATS,
        ),
        st.just(lit.Scalar(error=types.Error(failed_node_id="n0", message="boom"))),
        st.just(lit.Scalar()),
    )
    base = st.one_of(scalars.map(lambda s: lit.Literal(scalar=s)), st.just(lit.Literal()))
    unions = st.builds(
        lambda value, variant: lit.Literal(scalar=lit.Scalar(union=lit.Union(value=value, type=variant))),
        base,
        literal_types,
    )
    return st.recursive(
        base | unions,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(
                lambda items: lit.Literal(collection=lit.LiteralCollection(literals=items))
            ),
            st.dictionaries(st.text(max_size=6), inner, max_size=3).map(
                lambda entries: lit.Literal(map=lit.LiteralMap(literals=entries))
            ),
        ),
        max_leaves=6,
    )


_runs = iter(range(10**9))


def typed_request(
    task_type: str, literal_type: types.LiteralType, literal: lit.Literal, name: str = "x"
) -> agent_pb2.CreateTaskRequest:
    """A request as propeller sends it, whose one input has a drawn type and a drawn literal."""
    request = task_request(task_type, {}, {}, custom={"polls": 1}, execution=f"fuzz{next(_runs)}")
    request.template.interface.inputs.variables[name].type.CopyFrom(literal_type)
    request.inputs.literals[name].CopyFrom(literal)
    return request


# For each JSON type in a valid request, values of other types: protobuf's JSON mapping refuses them all.
_WRONG_TYPES: dict[type, st.SearchStrategy[Any]] = {
    str: st.one_of(
        st.lists(json_scalars, max_size=2),
        st.dictionaries(hostile_text, json_scalars, max_size=2),
        st.floats(),
        lone_surrogates,
    ),
    dict: st.one_of(st.lists(json_values, max_size=2), hostile_text, st.floats(), st.booleans()),
    list: st.one_of(st.dictionaries(hostile_text, json_values, max_size=2), hostile_text, st.floats()),
    int: st.one_of(
        st.lists(json_scalars, max_size=2),
        st.dictionaries(hostile_text, json_scalars, max_size=2),
        lone_surrogates,
        st.sampled_from([2**70, 1.5, "1e400", "NaN"]),
    ),
    bool: st.one_of(st.lists(json_scalars, max_size=2), lone_surrogates),
}


@st.composite
def mutated_bodies(draw: st.DrawFn, task_type: str) -> bytes:
    """A valid request's JSON with one value replaced by one of another type, or a hostile key added."""
    request = task_request(task_type, {"n": 1}, {"n": int}, execution=f"fuzz{next(_runs)}")
    body = json_format.MessageToDict(request)
    path = draw(st.sampled_from(list(_paths(body))))
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    original = parent[path[-1]]
    if isinstance(original, dict) and draw(st.booleans()):
        original[draw(hostile_text)] = draw(json_values)  # an unknown field, or a map entry of any shape
    else:
        parent[path[-1]] = draw(_WRONG_TYPES[type(original)])
    return json.dumps(body).encode()  # a lone surrogate is written as a \ud800 escape, as an attacker would


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))


def request_bodies(task_type: str) -> st.SearchStrategy[bytes]:
    """Bodies for POST /v1/tasks and /v1/sync/{agent}: garbage, too deep, hostile values, random literals."""
    typed = st.builds(lambda t, v: typed_request(task_type, t, v), literal_types, literals(json_safe=True))
    return st.one_of(
        st.binary(max_size=200),
        deep_bodies,
        json_values.map(lambda v: json.dumps(v).encode()),
        mutated_bodies(task_type),
        typed.map(lambda r: json.dumps(json_format.MessageToDict(r)).encode()),
    )


# --- the contract -------------------------------------------------------------------------------------------

_FIELD_FIRST = re.compile(r"^\S.*?: \S")


def check_http_answer(status: int, data: bytes) -> dict[str, Any]:
    """No 5xx; an error is JSON with one line, and a 400 names its field."""
    assert status < 500, (status, data[:500])
    event(f"HTTP {status}")
    if status < 400:
        return dict(json.loads(data))
    body = json.loads(data)
    error = body.get("error", body)
    message = error["message"]
    assert message, body
    assert "\n" not in message, body
    assert "\r" not in message, body
    if status == 400 and "error" in body:
        assert error["field"], body
    return dict(body)


def check_grpc_details(code: Any, details: str | None) -> None:
    """Never INTERNAL / UNKNOWN; one line; INVALID_ARGUMENT says `field: problem`."""
    import grpc

    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (code, details)
    assert details, code
    assert "\n" not in details, (code, details)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert _FIELD_FIRST.match(details), details


# --- what the emulated AWS holds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    items: frozenset[str]
    executions: frozenset[str]
    schedules: frozenset[str]
    objects: frozenset[str]


def holdings(stack: Any) -> Holdings:
    """Every tasks table item, execution, schedule and S3 object, by name."""
    dynamodb, sfn, scheduler, s3 = (stack.client(s) for s in ("dynamodb", "stepfunctions", "scheduler", "s3"))
    items = {
        item["id"]["S"]
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=stack.tasks_table, ProjectionExpression="id"
        )
        for item in page["Items"]
    }
    executions = {
        execution["name"]
        for arn in stack.state_machine_arns.values()
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        for execution in page["executions"]
    }
    schedules = {
        s["Name"] for page in scheduler.get_paginator("list_schedules").paginate() for s in page["Schedules"]
    }
    objects = {
        f"{bucket['Name']}/{obj['Key']}"
        for bucket in s3.list_buckets()["Buckets"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
        for obj in page.get("Contents", [])
    }
    return Holdings(frozenset(items), frozenset(executions), frozenset(schedules), frozenset(objects))


def assert_nothing_written(before: Holdings, after: Holdings, accepted: set[str]) -> None:
    """Whatever appeared belongs to a task the API accepted (a drawn request can be valid); nothing else."""
    assert after.items - before.items <= accepted
    assert after.executions - before.executions <= accepted
    assert after.schedules - before.schedules <= {sensor_schedule_name(task) for task in accepted}
    strays = {key for key in after.objects - before.objects if not _belongs(key, accepted)}
    assert not strays, sorted(strays)[:5]


def _belongs(key: str, accepted: set[str]) -> bool:
    # The example job agent keeps its jobs under state/<agent>/ by a job id of its own.
    return any(task in key for task in accepted) or bool(accepted and "/state/" in key)
