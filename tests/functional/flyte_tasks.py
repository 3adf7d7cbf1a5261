"""Flyte's side, built with flytekit itself: task definitions serialized into the TaskTemplates that
propeller sends, inputs encoded and outputs decoded by flytekit's TypeEngine. Test-only (flytekit is dev)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, literals_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.tools.translator import get_serializable


class ExampleTask(PythonTask):  # type: ignore[misc]
    """A flytekit task of one of the example agents' task types, with their `custom` settings."""

    def __init__(
        self, name: str, task_type: str, inputs: dict[str, type], outputs: dict[str, type], **custom: Any
    ) -> None:
        super().__init__(
            task_type=task_type,
            name=name,
            task_config=None,
            interface=Interface(inputs=inputs, outputs=outputs),
        )
        self._custom = custom

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        return dict(self._custom)


def serialize(task: PythonTask) -> Any:
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()


def create_request(
    task: PythonTask,
    inputs: dict[str, Any],
    execution: str,
    retry_attempt: int = 0,
    node: str = "n0",
    data_dir: str | None = None,
) -> agent_pb2.CreateTaskRequest:
    """What propeller sends: the serialized template, TypeEngine-encoded inputs, the execution's identity.

    The output prefix is `<node data dir>/<retry attempt>` (flytepropeller/pkg/controller/nodes/task/
    handler.go); `data_dir` names the node's data dir where it is not the top-level node's (a node inside a
    subworkflow has its data dir under its parent node's).
    """
    ctx = FlyteContextManager.current_context()
    literals = TypeEngine.dict_to_literal_map(ctx, inputs, task.python_interface.inputs).to_flyte_idl()
    template = serialize(task)
    execution_id = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        retry_attempt=retry_attempt,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id=node,
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="flytesnacks", domain="development", name=execution
            ),
        ),
    )
    return agent_pb2.CreateTaskRequest(
        inputs=literals,
        template=template,
        output_prefix=f"{data_dir or f's3://flyte-data/metadata/{execution}/{node}/data'}/{retry_attempt}",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(
            task_execution_id=execution_id, namespace="flytesnacks-development"
        ),
    )


def decode_outputs(task: PythonTask, outputs: literals_pb2.LiteralMap) -> dict[str, Any]:
    ctx = FlyteContextManager.current_context()
    python_types = task.python_interface.outputs
    values = TypeEngine.literal_map_to_kwargs(
        ctx, LiteralMap.from_flyte_idl(outputs), python_types=python_types
    )
    return dict(values)
