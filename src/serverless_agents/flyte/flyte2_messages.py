"""Flyte 2's messages (flyteidl2) in terms of Flyte 1's (flyteidl), which the HTTP API and the agents speak.

Flyte 2's executor talks to connectors with `flyteidl2.connector` messages. Their parts are Flyte 1's
messages under a new package with fields added at new numbers (checked field by field in
tests/unit/test_flyte2_translate.py): `flyteidl2.core.TaskTemplate`, `Literal`, `TaskLog`,
`TaskExecutionIdentifier` and the connector `TaskExecutionMetadata` parse as their flyteidl namesakes. So a
message crosses by its wire bytes (`convert`), and only what Flyte 2 shaped differently is rebuilt here:
inputs and outputs are lists of named literals (`flyteidl2.task.Inputs` / `Outputs`) instead of a
`LiteralMap`, and a `Connection` rides along on every call.

What Flyte 1 has no field for does not cross into the translation (Flyte 2's task metadata extras such as
`timeouts`, `cache_max_age`, a literal's `artifact_id`, and the interface's variable order).

Task identity needs nothing new: the executor fills the same `TaskExecutionIdentifier` (run name as the
execution name, action name as the node id, flyteorg/flyte executor/pkg/plugin/task_exec_metadata.go) and
an output prefix per action attempt (`<run output base>/<shard>/<action>/<attempt>`, task_exec_context.go),
so the API's one rule (`identity.task_id_for`, over `identity.task_id_from`) names Flyte 2 tasks too.

A Flyte 2 connector gets the executor's own request (`TaskContext.flyte2_request`), not this translation:
the translation serves the API's routing, task identity and the project's own agents. The executor's
`Connection.secrets` values never cross into either: see `serverless_agents.aws.connection_secrets`.
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


def check_connection(connection: Connection, template: tasks_pb2.TaskTemplate) -> None:
    """`configs` must be the template's `custom.configs`, where the agent reads them: the executor derives
    the whole Connection from the custom (plugin.go, Create: `utils.UnmarshalStruct(taskTemplate.
    GetCustom(), &connection)`, then each secret name replaced by its value). The secrets are the API's
    to check and keep (`serverless_agents.aws.connection_secrets`)."""
    configs = dict(connection.configs)
    if configs and configs != template_custom(template).get("configs"):
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
