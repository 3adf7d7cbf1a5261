"""Flyte 2 connectors, unchanged, as async agents: a `flyte.connectors.AsyncConnector` subclass named in
agents.toml runs in the state machine's Lambdas like any agent.

    [agents.bigquery]
    class = "flyteplugins.bigquery.connector:BigQueryConnector"
    secrets = { google_application_credentials = "arn:aws:secretsmanager:...:secret:gcp-sa" }

`AgentSettings.load_class` sees a connector class and asks `connector_agent` for its agent class. That class
calls the connector the way flyte-sdk's own connector server does (flyte/connectors/_server.py): `create`
gets the flyteidl2 task template, the inputs decoded by the SDK's type engine against the template's
interface, the output prefix and the task execution metadata; `get` and `delete` get the `ResourceMeta`
decoded by the connector's `metadata_type`; all three get the connection as keyword arguments. Outputs the
connector returns as Python values are encoded by the SDK (`get_resource_proto`), as its server would.

A task a Flyte 2 executor created carries the executor's own request (`TaskContext.flyte2_request`): the
connector gets its template and execution metadata unchanged (the interface's variable order, `metadata.
timeouts`, every field); a Flyte 1 client's task gets Flyte 1's messages under flyteidl2's names.

The connection: `configs` are the template's `custom.configs` (the executor derives the Connection from
the custom, flyteorg/flyte webapi/connector/plugin.go), kept in the resource metadata for `get` and
`delete`; the secrets are the agent's from agents.toml, under their manifest names, and the values the
executor sent in `Connection.secrets`, under their keys: the API kept those in a Secrets Manager secret
of this agent and the task's project and domain (`serverless_agents.aws.connection_secrets`), whose name the
task and the resource metadata carry. All are read through `secrets`' accessors, and masked.

The `flyte` SDK is imported here only: install the `flyte2` extra for the Lambdas of such agents.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from flyteidl2.connector import connector_pb2
from flyteidl2.core import tasks_pb2
from flyteidl2.task import common_pb2
from google.protobuf.json_format import MessageToDict
from pydantic import Field

from serverless_agents.agent import AsyncAgentBase, LogLink, Phase, Resource
from serverless_agents.agent_metadata import EncodedResourceMeta
from serverless_agents.agents.connectors import connector_agent_class
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.flyte import flyte2_messages
from serverless_agents.security.secrets import get_agent_secrets, get_connection_secrets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flyte.connectors import AsyncConnector, ResourceMeta
    from flyte.connectors import Resource as ConnectorResource

    from serverless_agents.agent import TaskContext


class ConnectorMetadata(EncodedResourceMeta):
    #: `Connection.configs`: settings, never secrets.
    configs: dict[str, str] = Field(default_factory=dict)
    #: The Secrets Manager secret holding the executor's `Connection.secrets`: its name, never a value.
    connection_secret: str | None = None


class ConnectorAgent(AsyncAgentBase[ConnectorMetadata]):
    """The agent for one connector class; `connector_agent` makes one subclass per connector."""

    metadata_type = ConnectorMetadata
    connector_class: ClassVar[type[AsyncConnector[Any]]]
    #: The API keeps a Flyte 2 executor's own request (and its Connection secrets) for this agent's tasks.
    takes_flyte2_request: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.connector = self.connector_class()

    async def create(self, task: TaskContext) -> ConnectorMetadata:
        original = task.flyte2_request
        if original is not None:  # the executor's own request: the connector gets it unchanged
            _check_same_task(original, task)
            template = original.template
            execution_metadata = (
                original.task_execution_metadata if original.HasField("task_execution_metadata") else None
            )
            inputs = original.inputs
        else:  # a Flyte 1 client's task: Flyte 1's messages, under flyteidl2's names
            template = flyte2_messages.convert(task.template, tasks_pb2.TaskTemplate)
            execution_metadata = (
                flyte2_messages.convert(task.execution_metadata, connector_pb2.TaskExecutionMetadata)
                if task.execution_metadata is not None
                else None
            )
            inputs = common_pb2.Inputs(literals=flyte2_messages.named_literals(task.literals))
        configs = _configs(flyte2_messages.template_custom(template))
        meta = await self.connector.create(
            task_template=template,
            output_prefix=task.output_prefix,
            inputs=await _native_inputs(template, inputs),
            task_execution_metadata=execution_metadata,
            **_connection(task.connection_secret, _scope(task)),
            **configs,
        )
        return ConnectorMetadata.of(meta.encode(), configs=configs, connection_secret=task.connection_secret)

    async def get(self, metadata: ConnectorMetadata) -> Resource:
        resource = await self.connector.get(
            resource_meta=self._resource_meta(metadata),
            **_connection(metadata.connection_secret),
            **metadata.configs,
        )
        return await _resource(resource)

    async def delete(self, metadata: ConnectorMetadata) -> None:
        await self.connector.delete(
            resource_meta=self._resource_meta(metadata),
            **_connection(metadata.connection_secret),
            **metadata.configs,
        )

    def _resource_meta(self, metadata: ConnectorMetadata) -> ResourceMeta:
        meta_type: type[ResourceMeta] = self.connector.metadata_type
        return meta_type.decode(metadata.encoded)


def _connection(secret: str | None, scope: tuple[str, str] | None = None) -> dict[str, str]:
    """The keyword arguments flyte-sdk's server makes of a Connection's secrets: the agent's own (from
    agents.toml), and those the executor sent for the task (kept in Secrets Manager)."""
    return {**get_agent_secrets(), **(get_connection_secrets(secret, scope) if secret else {})}


def _scope(task: TaskContext) -> tuple[str, str] | None:
    """The task's Flyte project and domain: its connection secret must be theirs."""
    if task.execution_metadata is None:
        return None
    execution = task.execution_metadata.task_execution_id.node_execution_id.execution_id
    return str(execution.project), str(execution.domain)


def _check_same_task(original: connector_pb2.CreateTaskRequest, task: TaskContext) -> None:
    """The executor's request and its translation, which routed and named the task, must agree."""
    ours = task.execution_metadata.task_execution_id if task.execution_metadata is not None else None
    theirs = original.task_execution_metadata.task_execution_id
    if (
        original.template.type != task.template.type
        or ours is None
        or flyte2_messages.convert(theirs, type(ours)) != ours
    ):
        raise InvalidRequest("flyte2_request", "is not the task's: its type or task execution id differs")


@functools.cache
def connector_agent(connector_class: type[AsyncConnector[Any]]) -> type[ConnectorAgent]:
    """The agent class serving `connector_class`'s task category (one class per connector, cached)."""
    return connector_agent_class(
        ConnectorAgent,
        connector_class,
        getattr(connector_class, "task_type_name", ""),
        connector_class.task_type_version,
    )


def _configs(custom: Mapping[str, Any]) -> dict[str, str]:
    configs = custom.get("configs") or {}
    if not isinstance(configs, dict) or not all(isinstance(v, str) for v in configs.values()):
        raise InvalidRequest(
            "template.custom.configs", "must map names to strings (Flyte's Connection.configs)"
        )
    return dict(configs)


async def _native_inputs(template: tasks_pb2.TaskTemplate, inputs: common_pb2.Inputs) -> dict[str, Any]:
    """The inputs as flyte-sdk's connector server decodes them: types guessed from the interface."""
    from flyte._internal.runtime.convert import Inputs, convert_from_inputs_to_native
    from flyte.models import NativeInterface, _has_default
    from flyte.types import TypeEngine

    types: dict[str, tuple[type[Any], type[_has_default] | type[inspect._empty]]] = {
        str(entry.key): (TypeEngine.guess_python_type(entry.value.type), inspect.Parameter.empty)
        for entry in template.interface.inputs.variables
    }
    native: dict[str, Any] = await convert_from_inputs_to_native(
        NativeInterface.from_types(inputs=types, outputs={}), Inputs(proto_inputs=inputs)
    )
    return native


async def _resource(resource: ConnectorResource) -> Resource:
    """The connector's Resource as the SDK's server would send it, then as this project's Resource."""
    from flyte.connectors._connector import get_resource_proto

    proto = await get_resource_proto(resource)
    return Resource(
        phase=Phase(proto.phase),
        message=proto.message,
        log_links=[LogLink(link.name, link.uri) for link in proto.log_links],
        outputs=flyte2_messages.literal_map(proto.outputs, field="outputs")
        if proto.HasField("outputs")
        else None,
        custom_info=dict(MessageToDict(proto.custom_info)) if proto.HasField("custom_info") else {},
    )
