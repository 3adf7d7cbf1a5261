"""Flyte 2's side, built with the `flyte` SDK 2.x itself: task definitions serialized into the flyteidl2
TaskTemplates the executor sends, inputs encoded and outputs decoded by the SDK's type engine, and a client
that calls the connector services the way the executor's connector plugin does. Test-only (flyte is dev)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import flyte
import grpc
from flyte._internal.runtime.convert import (
    Outputs,
    convert_from_native_to_inputs,
    convert_outputs_to_native,
)
from flyte._internal.runtime.task_serde import get_proto_task
from flyte.connectors import AsyncConnectorExecutorMixin
from flyte.extend import TaskTemplate
from flyte.models import NativeInterface, SerializationContext
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import identifier_pb2, security_pb2, tasks_pb2
from google.protobuf import json_format

from serverless_agents.agent import Phase

ROOT = Path(__file__).resolve().parents[2]


class PluginTask(AsyncConnectorExecutorMixin, TaskTemplate):  # type: ignore[misc]
    """A Flyte 2 plugin task the way flyteplugins write them (flyteplugins/bigquery/task.py): a task type,
    an interface, and `custom_config` for the template's `custom`."""

    def __init__(
        self,
        name: str,
        task_type: str,
        inputs: dict[str, type],
        outputs: dict[str, type],
        **custom: Any,
    ) -> None:
        super().__init__(
            name=name,
            interface=NativeInterface({k: (v, None) for k, v in inputs.items()}, outputs),
            task_type=task_type,
            image=None,
        )
        self._custom = custom

    def custom_config(self, sctx: SerializationContext) -> dict[str, Any]:
        return dict(self._custom)


def file_sensor(name: str) -> PluginTask:
    """A FileSensor-style Flyte 2 task: task type `sensor`, routed by the sensor flytekit names in custom."""
    return PluginTask(
        name,
        "sensor",
        {"path": str},
        {},
        sensor_module="flytekit.sensor.file_sensor",
        sensor_name="FileSensor",
    )


def serialize(task: TaskTemplate) -> tasks_pb2.TaskTemplate:
    """The SDK's own serialization (what `flyte deploy` registers), inside a TaskEnvironment as deployed."""
    if task.parent_env is None:
        flyte.TaskEnvironment.from_task(f"env-{task.name.replace('.', '-')}", task)
    # The repository root: a function task's loader names its module relative to it.
    context = SerializationContext(project="flytesnacks", domain="development", version="v1", root_dir=ROOT)
    template: tasks_pb2.TaskTemplate = get_proto_task(task, context)
    return template


def encode_inputs(task: TaskTemplate, inputs: dict[str, Any]) -> Any:
    return asyncio.run(convert_from_native_to_inputs(task.native_interface, **inputs)).proto_inputs


def decode_outputs(task: PluginTask, resource: connector_pb2.Resource) -> dict[str, Any]:
    values = asyncio.run(convert_outputs_to_native(task.native_interface, Outputs(resource.outputs)))
    names = list(task.native_interface.outputs)
    if not names:  # the SDK decodes "no outputs" as None
        return {}
    return dict(zip(names, values if len(names) > 1 else (values,), strict=True))


def connection(
    template: tasks_pb2.TaskTemplate, resolved: dict[str, str] | None = None
) -> security_pb2.Connection:
    """The executor's Connection: the template's custom read as one (plugin.go, Create:
    `utils.UnmarshalStruct(taskTemplate.GetCustom(), &connection)`), each secret name replaced by its value
    from the executor's secret manager."""
    custom = json_format.MessageToDict(template.custom)
    secrets = {key: (resolved or {})[name] for key, name in custom.get("secrets", {}).items()}
    return security_pb2.Connection(
        task_type=custom.get("task_type", ""), secrets=secrets, configs=custom.get("configs", {})
    )


class Executor:
    """The calls Flyte 2's connector plugin makes (flyteorg/flyte flyteplugins/go/tasks/plugins/webapi/
    connector/plugin.go and client.go), through flyteidl2's generated stubs, with its 10 s default timeout."""

    TIMEOUT = 10  # config.go: DefaultConnector.DefaultTimeout

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.tasks = service_pb2_grpc.AsyncConnectorServiceStub(self.channel)
        self.metadata = service_pb2_grpc.ConnectorMetadataServiceStub(self.channel)

    def create_request(
        self,
        task: TaskTemplate,
        inputs: dict[str, Any],
        run: str,
        action: str = "a0",
        attempt: int = 0,
        secrets: dict[str, str] | None = None,
        project: str = "flytesnacks",
    ) -> connector_pb2.CreateTaskRequest:
        """plugin.go Create: named literals from the input map, the output prefix of the action attempt
        (executor/pkg/plugin/task_exec_context.go), and the TaskExecutionIdentifier the executor builds
        (run name, action name as the node id, executor/pkg/plugin/task_exec_metadata.go)."""
        template = serialize(task)
        execution_id = identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id,
            retry_attempt=attempt,
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(
                node_id=action,
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project=project, domain="development", name=run
                ),
            ),
        )
        return connector_pb2.CreateTaskRequest(
            inputs=encode_inputs(task, inputs) if inputs else None,
            template=template,
            output_prefix=f"s3://flyte-data/runs/{run}/x1/{action}/{attempt}",
            task_execution_metadata=connector_pb2.TaskExecutionMetadata(
                task_execution_id=execution_id,
                namespace=f"{project}-development",
                labels={"run": run},
                environment_variables={"RUN_NAME": run, "ACTION_NAME": action},
            ),
            connection=connection(template, secrets),
        )

    def create(self, request: connector_pb2.CreateTaskRequest) -> bytes:
        return bytes(self.tasks.CreateTask(request, timeout=self.TIMEOUT).resource_meta)

    def get(self, request: connector_pb2.CreateTaskRequest, resource_meta: bytes) -> connector_pb2.Resource:
        """plugin.go Get: the task category, resource meta, output prefix and connection it kept."""
        category = connector_pb2.TaskCategory(
            name=request.template.type, version=request.template.task_type_version
        )
        get = connector_pb2.GetTaskRequest(
            task_category=category,
            resource_meta=resource_meta,
            output_prefix=request.output_prefix,
            connection=request.connection,
        )
        return self.tasks.GetTask(get, timeout=self.TIMEOUT).resource

    def delete(self, request: connector_pb2.CreateTaskRequest, resource_meta: bytes) -> None:
        category = connector_pb2.TaskCategory(
            name=request.template.type, version=request.template.task_type_version
        )
        delete = connector_pb2.DeleteTaskRequest(
            task_category=category, resource_meta=resource_meta, connection=request.connection
        )
        self.tasks.DeleteTask(delete, timeout=self.TIMEOUT)

    def wait(
        self, request: connector_pb2.CreateTaskRequest, resource_meta: bytes, timeout: float = 30
    ) -> connector_pb2.Resource:
        """GetTask until the phase is terminal (ResourceWrapper.IsTerminal in plugin.go)."""
        deadline = time.monotonic() + timeout
        while True:
            resource = self.get(request, resource_meta)
            if Phase(resource.phase).is_terminal:
                return resource
            assert time.monotonic() < deadline, f"task still {Phase(resource.phase).name}"
            time.sleep(0.1)

    def run(self, task: PluginTask, inputs: dict[str, Any], run: str) -> connector_pb2.Resource:
        request = self.create_request(task, inputs, run)
        return self.wait(request, self.create(request))
