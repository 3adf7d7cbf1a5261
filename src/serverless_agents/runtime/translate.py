"""Between Flyte's messages and the agent SDK: decode a request into a `TaskContext`, encode a `Resource`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2

from serverless_agents.agent import LogLink, Phase, Resource, TaskContext
from serverless_agents.exceptions import InvalidRequest, LiteralConversionError
from serverless_agents.flyte import wire
from serverless_agents.flyte.literals import check_literal_type, decode_literal_map, encode_literal_map

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate
    from flyteidl2.connector.connector_pb2 import CreateTaskRequest as Flyte2CreateTaskRequest


def check_create_request(request: agent_pb2.CreateTaskRequest) -> None:
    if not request.HasField("template"):
        raise InvalidRequest("template", "required: the TaskTemplate of the task to run")
    if not request.template.type:
        raise InvalidRequest("template.type", "required: the task type that selects the agent")
    interface = request.template.interface
    for direction in ("inputs", "outputs"):
        for name, variable in getattr(interface, direction).variables.items():
            check_literal_type(variable.type, field=f"template.interface.{direction}.{name}")


def task_context(
    task_id: str,
    request: agent_pb2.CreateTaskRequest,
    *,
    flyte2_request: Flyte2CreateTaskRequest | None = None,
    connection_secret: str | None = None,
) -> TaskContext:
    """The agent's view of a task; bad inputs raise `InvalidRequest` naming the input. `request` is
    Flyte 1's message (a Flyte 2 executor's translated, `flyte2_request` its original)."""
    check_create_request(request)
    template = request.template
    # A template without an interface (a hand-written request) is decoded by the literals' own shapes.
    typed = template.HasField("interface")
    variables = template.interface.inputs.variables if typed else None
    return TaskContext(
        task_id=task_id,
        template=template,
        inputs=decode_literal_map(request.inputs, variables, prefix="inputs", exact=typed),
        literals=request.inputs,
        output_prefix=request.output_prefix,
        execution_metadata=request.task_execution_metadata
        if request.HasField("task_execution_metadata")
        else None,
        flyte2_request=flyte2_request,
        connection_secret=connection_secret,
    )


def encode_outputs(
    outputs: Mapping[str, Any] | literals_pb2.LiteralMap | None, template: TaskTemplate
) -> literals_pb2.LiteralMap | None:
    if outputs is None or isinstance(outputs, literals_pb2.LiteralMap):
        return outputs
    return encode_literal_map(outputs, template.interface.outputs.variables, prefix="outputs")


def to_resource_message(
    phase: Phase,
    message: str,
    log_links: list[LogLink],
    custom_info: Mapping[str, Any],
    outputs: literals_pb2.LiteralMap | None,
) -> agent_pb2.Resource:
    resource = agent_pb2.Resource(
        phase=phase.value,
        message=message,
        log_links=[execution_pb2.TaskLog(name=link.name, uri=link.uri) for link in log_links],
    )
    if custom_info:
        resource.custom_info.update(dict(custom_info))
    if outputs is not None:
        resource.outputs.CopyFrom(outputs)
    return resource


def checked_outputs(
    resource: Resource, template: TaskTemplate
) -> tuple[Resource, literals_pb2.LiteralMap | None]:
    """The agent's report and its outputs encoded with the task's interface. Outputs that do not match it
    are the agent's fault, not the caller's: the task fails saying so (async and sync agents alike)."""
    try:
        return resource, encode_outputs(resource.outputs, template)
    except LiteralConversionError as e:
        failed = f"the agent's outputs do not match the task interface: {e}"
        return replace(resource, phase=Phase.FAILED, message=failed, outputs=None), None


def resource_message(resource: Resource, template: TaskTemplate) -> agent_pb2.Resource:
    """The agent's report as Flyte's `Resource`, its outputs checked (`checked_outputs`)."""
    checked, outputs = checked_outputs(resource, template)
    return to_resource_message(
        checked.phase, checked.message, checked.log_links, checked.custom_info, outputs
    )


def literal_map_from_json(data: Mapping[str, Any]) -> literals_pb2.LiteralMap:
    return wire.from_dict(literals_pb2.LiteralMap, dict(data), field="outputs")
