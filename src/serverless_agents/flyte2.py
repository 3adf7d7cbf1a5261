"""Flyte 2's messages (flyteidl2) in terms of Flyte 1's (flyteidl), which the HTTP API and the agents speak.

Flyte 2's executor talks to connectors with `flyteidl2.connector` messages. Their parts are Flyte 1's
messages under a new package with fields added at new numbers (checked field by field in
tests/unit/test_flyte2_translate.py): `flyteidl2.core.TaskTemplate`, `Literal`, `TaskLog`,
`TaskExecutionIdentifier` and the connector `TaskExecutionMetadata` parse as their flyteidl namesakes. So a
message crosses by its wire bytes (`convert`), and only what Flyte 2 shaped differently is rebuilt here:
inputs and outputs are lists of named literals (`flyteidl2.task.Inputs` / `Outputs`) instead of a
`LiteralMap`, and a `Connection` rides along on every call.

What Flyte 1 has no field for does not cross (Flyte 2's task metadata extras such as `cache_max_age`,
`reuse_policy`, a literal's `artifact_id`): agents never read them.

Task identity needs nothing new: the executor fills the same `TaskExecutionIdentifier` (run name as the
execution name, action name as the node id, flyteorg/flyte executor/pkg/plugin/task_exec_metadata.go) and
an output prefix per action attempt (`<run output base>/<shard>/<action>/<attempt>`, task_exec_context.go),
so the API's one rule (`identity.task_id_for`, over `identity.task_id_from`) names Flyte 2 tasks too.

`Connection.secrets` are refused (`check_connection`): see docs/flyte-integration.md, "Secrets".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.core import execution_pb2, tasks_pb2
from flyteidl2.task import common_pb2
from google.protobuf.json_format import MessageToDict

from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from flyteidl2.core.security_pb2 import Connection
    from google.protobuf.message import Message

T = TypeVar("T", bound="Message")


def convert(message: Message, target: type[T]) -> T:
    """The same message under the other package: its wire bytes parsed as `target`."""
    converted = target()
    converted.ParseFromString(message.SerializeToString())
    return converted


def literal_map(literals: common_pb2.Inputs | common_pb2.Outputs, *, field: str) -> literals_pb2.LiteralMap:
    """Named literals as a `LiteralMap`; a name given twice is refused (a map would keep one silently)."""
    result = literals_pb2.LiteralMap()
    for named in literals.literals:
        if named.name in result.literals:
            raise InvalidRequest(f"{field}.{named.name}", "given twice")
        result.literals[named.name].CopyFrom(convert(named.value, literals_pb2.Literal))
    return result


def named_literals(literal_map: literals_pb2.LiteralMap) -> list[common_pb2.NamedLiteral]:
    from flyteidl2.core import literals_pb2 as literals2_pb2

    return [
        common_pb2.NamedLiteral(name=name, value=convert(literal_map.literals[name], literals2_pb2.Literal))
        for name in sorted(literal_map.literals)
    ]


def check_connection(connection: Connection, template: tasks_pb2.TaskTemplate | None = None) -> None:
    """Refuse secret values: persisting nothing secret means never accepting one on the wire.

    The executor resolves `Connection.secrets` to values from its own secret store (plugin.go, Create) and
    sends them again on every GetTask and DeleteTask. Here the connector runs in Lambdas, so a value would
    have to cross the HTTP API into the state machine's input and history; instead an agent's secrets come
    from Secrets Manager, named in agents.toml. Only the keys are named in the error, never a value.
    `configs` are the template's `custom.configs` (the executor derives the whole Connection from the
    template's custom), which the agent reads there; a Connection that says otherwise is refused.
    """
    if connection.secrets:
        keys = ", ".join(sorted(connection.secrets))
        raise InvalidRequest(
            "connection.secrets",
            f"secret values are not accepted ({keys}): put them in AWS Secrets Manager, name them under the "
            "agent's `secrets` in agents.toml (a connector receives them as the same keyword arguments), "
            "and drop them from the task's `secrets`",
        )
    configs = dict(connection.configs)
    if template is not None and configs and configs != template_custom(template).get("configs"):
        raise InvalidRequest(
            "connection.configs", "must equal the task template's custom.configs, where the agent reads them"
        )


def create_request(request: connector_pb2.CreateTaskRequest) -> agent_pb2.CreateTaskRequest:
    """Flyte 2's CreateTask as the CreateTaskRequest the HTTP API takes."""
    check_connection(request.connection, request.template)
    translated = agent_pb2.CreateTaskRequest(output_prefix=request.output_prefix)
    if request.HasField("template"):
        translated.template.CopyFrom(convert(request.template, type(translated.template)))
    if request.HasField("inputs"):
        translated.inputs.CopyFrom(literal_map(request.inputs, field="inputs"))
    if request.HasField("task_execution_metadata"):
        translated.task_execution_metadata.CopyFrom(
            convert(request.task_execution_metadata, agent_pb2.TaskExecutionMetadata)
        )
    return translated


def resource(resource: agent_pb2.Resource) -> connector_pb2.Resource:
    """Flyte 1's Resource (what the HTTP API answers) as Flyte 2's."""
    translated = connector_pb2.Resource(
        phase=resource.phase,
        message=resource.message,
        log_links=[convert(link, execution_pb2.TaskLog) for link in resource.log_links],
    )
    if resource.HasField("custom_info"):
        translated.custom_info.CopyFrom(resource.custom_info)
    if resource.HasField("outputs"):
        translated.outputs.literals.extend(named_literals(resource.outputs))
    return translated


def template_custom(template: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    return dict(MessageToDict(template.custom)) if template.HasField("custom") else {}
