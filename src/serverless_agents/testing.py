"""Helpers for testing agents and clients: Flyte requests shaped the way flytepropeller sends them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, tasks_pb2, types_pb2

from serverless_agents.literals import encode_literal_map

_TYPES = {int: types_pb2.INTEGER, str: types_pb2.STRING, float: types_pb2.FLOAT, bool: types_pb2.BOOLEAN}


def interface_for(values: Mapping[str, Any]) -> interface_pb2.VariableMap:
    return interface_pb2.VariableMap(
        variables={
            name: interface_pb2.Variable(type=types_pb2.LiteralType(simple=_TYPES[type(value)]))
            for name, value in values.items()
        }
    )


def task_request(
    task_type: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    custom: Mapping[str, Any] | None = None,
    execution: str = "demo",
    node: str = "n0",
    attempt: int = 0,
    output_prefix: str | None = None,
) -> agent_pb2.CreateTaskRequest:
    """A CreateTaskRequest shaped like propeller's, for a task with simple typed inputs and outputs.

    The output prefix is propeller's unless given: `<node data dir>/<retry attempt>`, the data dir under the
    execution's (flytepropeller/pkg/controller/nodes/task/handler.go, `ioutils.NewRemoteFileOutputPaths`).
    """
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            project="demo", domain="development", name=f"demo.{task_type}", version="1"
        ),
        type=task_type,
        interface=interface_pb2.TypedInterface(inputs=interface_for(inputs), outputs=interface_for(outputs)),
    )
    if custom:
        template.custom.update(dict(custom))
    literal_inputs = encode_literal_map(inputs, template.interface.inputs.variables, prefix="inputs")
    execution_id = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id=node,
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="demo", domain="development", name=execution
            ),
        ),
        retry_attempt=attempt,
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literal_inputs,
        output_prefix=output_prefix
        if output_prefix is not None
        else f"s3://demo/metadata/propeller/demo-development-{execution}/{node}/data/{attempt}",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution_id),
    )
