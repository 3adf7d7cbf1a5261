"""Flyte 2's connector messages in terms of Flyte 1's: what crosses by wire bytes, what is rebuilt, and
what is refused (a Connection's secret values)."""

from __future__ import annotations

import json

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2 as execution1_pb2
from flyteidl.core import identifier_pb2 as identifier1_pb2
from flyteidl.core import interface_pb2 as interface1_pb2
from flyteidl.core import literals_pb2 as literals1_pb2
from flyteidl.core import tasks_pb2 as tasks1_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.core import (
    execution_pb2,
    identifier_pb2,
    interface_pb2,
    literals_pb2,
    security_pb2,
    tasks_pb2,
)
from flyteidl2.task import common_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_agents.aws.connection_secrets import names_digest, secret_names, take_secret_values
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.flyte import flyte2_messages, wire
from serverless_agents.flyte.identity import task_id_for, task_id_from
from serverless_agents.flyte.literals import decode_literal_map, encode_literal_map
from serverless_agents.testing import interface_for


def missing_fields(flyte1: Descriptor, flyte2_: Descriptor, path: str, seen: set[str]) -> list[str]:
    """Every field of the Flyte 1 message (recursively) that Flyte 2's lacks or shapes differently."""
    if flyte1.full_name in seen:
        return []
    seen.add(flyte1.full_name)
    by_number = {field.number: field for field in flyte2_.fields}
    problems = []
    for field in flyte1.fields:
        other: FieldDescriptor | None = by_number.get(field.number)
        if other is None or (other.name, other.type, other.is_repeated) != (
            field.name,
            field.type,
            field.is_repeated,
        ):
            problems.append(f"{path}.{field.name}")
        elif field.message_type is not None:
            problems += missing_fields(field.message_type, other.message_type, f"{path}.{field.name}", seen)
    return problems


@pytest.mark.parametrize(
    ("flyte1", "flyte2_", "except_"),
    [
        (tasks1_pb2.TaskTemplate, tasks_pb2.TaskTemplate, []),
        (literals1_pb2.Literal, literals_pb2.Literal, []),
        (execution1_pb2.TaskLog, execution_pb2.TaskLog, []),
        (identifier1_pb2.TaskExecutionIdentifier, identifier_pb2.TaskExecutionIdentifier, []),
        # `overrides` is Flyte 1's (propeller's pod overrides); Flyte 2's executor sends none.
        (agent_pb2.TaskExecutionMetadata, connector_pb2.TaskExecutionMetadata, ["m.overrides"]),
    ],
    ids=["TaskTemplate", "Literal", "TaskLog", "TaskExecutionIdentifier", "TaskExecutionMetadata"],
)
def test_flyte2_messages_carry_every_flyte1_field_at_the_same_number(
    flyte1: type, flyte2_: type, except_: list[str]
) -> None:
    """What lets `flyte2_messages.convert` move a message by its wire bytes in both directions."""
    assert missing_fields(flyte1.DESCRIPTOR, flyte2_.DESCRIPTOR, "m", set()) == except_


TYPES = {"greeting": str, "n": int, "ratio": float, "ok": bool}


def flyte2_request(**connection: dict[str, str]) -> connector_pb2.CreateTaskRequest:
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(project="p", domain="development", name="wf.job", version="v1"),
        type="example_job",
        interface=flyte2_messages.convert(
            interface1_pb2.TypedInterface(inputs=interface_for(TYPES), outputs=interface_for(TYPES)),
            interface_pb2.TypedInterface,
        ),
    )
    template.custom.update({"polls": 2, "configs": {"region": "eu-west-1"}})
    values = {"greeting": "hi", "n": 3, "ratio": 0.5, "ok": False}
    inputs = encode_literal_map(values, interface_for(TYPES).variables, prefix="inputs")
    return connector_pb2.CreateTaskRequest(
        template=template,
        inputs=common_pb2.Inputs(literals=flyte2_messages.named_literals(inputs)),
        output_prefix="s3://bucket/runs/r1/x1/a0/0",
        task_execution_metadata=connector_pb2.TaskExecutionMetadata(
            task_execution_id=identifier_pb2.TaskExecutionIdentifier(
                task_id=template.id,
                retry_attempt=1,
                node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                    node_id="a0",
                    execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                        project="p", domain="development", name="r1"
                    ),
                ),
            ),
            namespace="p-development",
            labels={"team": "ml"},
        ),
        connection=security_pb2.Connection(**connection),
    )


def test_create_request_becomes_the_flyte1_request_the_api_takes() -> None:
    translated = flyte2_messages.create_request(flyte2_request())

    assert translated.template.type == "example_job"
    assert translated.template.custom["polls"] == 2
    assert translated.output_prefix == "s3://bucket/runs/r1/x1/a0/0"
    assert translated.task_execution_metadata.labels == {"team": "ml"}
    variables = translated.template.interface.inputs.variables
    assert decode_literal_map(translated.inputs, variables, prefix="inputs") == {
        "greeting": "hi",
        "n": 3,
        "ratio": 0.5,
        "ok": False,
    }


def test_task_identity_is_flyte1s_rule_over_the_action_attempt_and_output_prefix() -> None:
    """The executor's run name, action name and attempt (executor/pkg/plugin/task_exec_metadata.go) and
    the action attempt's output prefix name the task, through the one rule both protocols share."""
    request = flyte2_request()
    translated = flyte2_messages.create_request(request)
    identifier = request.task_execution_metadata.task_execution_id

    task_id = task_id_for(
        "job", translated.task_execution_metadata.task_execution_id, translated.output_prefix
    )

    assert task_id == task_id_from(
        "job",
        ("r1", "a0"),
        1,
        ["", "p", "development", "r1", "a0", "p", "development", "wf.job", "v1", 1, request.output_prefix],
    )
    assert identifier.retry_attempt == 1
    assert task_id.startswith("job_r1-a0-a1-")


def test_an_input_named_twice_is_refused() -> None:
    request = flyte2_request()
    request.inputs.literals.append(request.inputs.literals[0])

    with pytest.raises(InvalidRequest, match="given twice") as error:
        flyte2_messages.create_request(request)
    assert error.value.field == f"inputs.{request.inputs.literals[0].name}"


@settings(max_examples=50, derandomize=True, deadline=None)
@given(
    secrets=st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda k: "\x00" not in k),
        st.text(min_size=8, max_size=80).map(lambda value: f"s3cr3t-{value}"),
        min_size=1,
        max_size=3,
    )
)
def test_connection_secrets_never_cross_into_flyte1s_request_and_undeclared_keys_name_keys_only(
    secrets: dict[str, str],
) -> None:
    """The translation (what routes and names the task) carries no Connection; the executor's request is
    split into what may travel and the values, and keys the template does not declare are refused
    naming keys, never a value."""
    request = flyte2_request(secrets=secrets)
    translated = flyte2_messages.create_request(request)
    original, values = take_secret_values(wire.to_dict(request))

    assert values == secrets
    carried = json.dumps([wire.to_dict(translated), original])
    for value in secrets.values():
        assert value not in carried
    with pytest.raises(InvalidRequest) as error:
        secret_names(values, {"secrets": {"declared": "flyte-secret"}})
    assert error.value.field == "connection.secrets"
    message = str(error.value)
    for key, value in secrets.items():
        assert key in message
        if value not in ", ".join(sorted(secrets)):  # a value that happens to spell a key is not a leak
            assert value not in message


def test_connection_configs_must_be_the_templates() -> None:
    assert flyte2_messages.create_request(flyte2_request(configs={"region": "eu-west-1"}))

    with pytest.raises(InvalidRequest, match=r"custom\.configs") as error:
        flyte2_messages.create_request(flyte2_request(configs={"region": "us-east-1"}))
    assert error.value.field == "connection.configs"


def test_connection_secret_names_are_the_templates_declared_names() -> None:
    custom = {"secrets": {"databricks_token": "team-token"}}

    assert secret_names({"databricks_token": "v"}, custom) == {"databricks_token": "team-token"}
    assert names_digest({"databricks_token": "team-token"}) != names_digest({"databricks_token": "other"})


def test_resource_becomes_flyte2s_with_named_outputs() -> None:
    outputs = encode_literal_map(
        {"n": 1, "greeting": "x"}, interface_for({"n": int, "greeting": str}).variables
    )
    resource = agent_pb2.Resource(
        phase=3,
        message="done",
        log_links=[execution1_pb2.TaskLog(name="job", uri="https://example.invalid/1")],
        outputs=outputs,
    )
    resource.custom_info.update({"polls": 2})

    translated = flyte2_messages.resource(resource)

    assert translated.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert translated.message == "done"
    assert [(link.name, link.uri) for link in translated.log_links] == [("job", "https://example.invalid/1")]
    assert translated.custom_info["polls"] == 2
    assert [named.name for named in translated.outputs.literals] == ["greeting", "n"]
    assert flyte2_messages.literal_map(translated.outputs, field="outputs") == outputs


def test_a_resource_without_outputs_has_none() -> None:
    assert not flyte2_messages.resource(agent_pb2.Resource(phase=2)).HasField("outputs")


literal_values = st.recursive(
    st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.text(max_size=30), st.booleans(), st.floats(allow_nan=False)
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(values=st.dictionaries(st.text(min_size=1, max_size=10), literal_values, max_size=4))
def test_literals_cross_both_ways_unchanged(values: dict[str, object]) -> None:
    flyte1 = literals1_pb2.LiteralMap()
    for name, value in values.items():
        flyte1.literals[name].CopyFrom(_literal(value))

    there = common_pb2.Outputs(literals=flyte2_messages.named_literals(flyte1))

    assert flyte2_messages.literal_map(there, field="outputs") == flyte1


def _literal(value: object) -> literals1_pb2.Literal:
    if isinstance(value, list):
        return literals1_pb2.Literal(
            collection=literals1_pb2.LiteralCollection(literals=map(_literal, value))
        )
    primitive = literals1_pb2.Primitive()
    if isinstance(value, bool):
        primitive.boolean = value
    elif isinstance(value, int):
        primitive.integer = value
    elif isinstance(value, float):
        primitive.float_value = value
    else:
        primitive.string_value = str(value)
    return literals1_pb2.Literal(scalar=literals1_pb2.Scalar(primitive=primitive))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_request_the_stubs_can_parse_translates_or_is_invalid_argument(data: bytes) -> None:
    """Hostile bytes on the wire: whatever parses as Flyte 2's CreateTaskRequest either becomes a request the
    API's JSON mapping carries unchanged, or is refused naming a field, never another error."""
    from google.protobuf.message import DecodeError

    request = connector_pb2.CreateTaskRequest()
    try:
        request.ParseFromString(flyte2_request().SerializeToString() + data)
    except DecodeError:
        return
    try:
        translated = flyte2_messages.create_request(request)
    except InvalidRequest as e:
        refused: InvalidRequest | None = e
    else:
        refused = None
    if refused is not None:
        assert refused.field.startswith(("inputs.", "connection."))
        return
    carried = wire.from_dict(agent_pb2.CreateTaskRequest, wire.to_dict(translated), field="body")
    translated.DiscardUnknownFields()  # Flyte 2's own fields: documented not to cross
    assert carried == translated
