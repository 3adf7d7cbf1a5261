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

The connection: `configs` are the template's `custom.configs` (the executor derives the Connection from
the custom, flyteorg/flyte webapi/connector/plugin.go), kept in the resource metadata for `get` and
`delete`; `secrets` are the agent's secrets from agents.toml, read from Secrets Manager in the Lambda,
under their manifest names. Executor-sent secret values are refused at the adapter and never travel.

The `flyte` SDK is imported here only: install the `flyte2` extra for the Lambdas of such agents.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from flyteidl2.connector import connector_pb2
from flyteidl2.core import tasks_pb2
from google.protobuf.json_format import MessageToDict
from pydantic import Field

from serverless_agents import flyte2
from serverless_agents.agent import AsyncAgentBase, LogLink, Phase, Resource
from serverless_agents.agents.connectors import EncodedResourceMeta, connector_agent_class
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.secrets import get_agent_secrets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flyte.connectors import AsyncConnector, ResourceMeta
    from flyte.connectors import Resource as ConnectorResource
    from flyteidl.core import literals_pb2

    from serverless_agents.agent import TaskContext


class ConnectorMetadata(EncodedResourceMeta):
    #: `Connection.configs`: settings, never secrets.
    configs: dict[str, str] = Field(default_factory=dict)


class ConnectorAgent(AsyncAgentBase[ConnectorMetadata]):
    """The agent for one connector class; `connector_agent` makes one subclass per connector."""

    metadata_type = ConnectorMetadata
    connector_class: ClassVar[type[AsyncConnector[Any]]]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.connector = self.connector_class()

    async def create(self, task: TaskContext) -> ConnectorMetadata:
        template = flyte2.convert(task.template, tasks_pb2.TaskTemplate)
        configs = _configs(flyte2.template_custom(template))
        execution_metadata = (
            flyte2.convert(task.execution_metadata, connector_pb2.TaskExecutionMetadata)
            if task.execution_metadata is not None
            else None
        )
        meta = await self.connector.create(
            task_template=template,
            output_prefix=task.output_prefix,
            inputs=await _native_inputs(template, task.literals),
            task_execution_metadata=execution_metadata,
            **get_agent_secrets(),
            **configs,
        )
        return ConnectorMetadata.of(meta.encode(), configs=configs)

    async def get(self, metadata: ConnectorMetadata) -> Resource:
        resource = await self.connector.get(
            resource_meta=self._resource_meta(metadata), **get_agent_secrets(), **metadata.configs
        )
        return await _resource(resource)

    async def delete(self, metadata: ConnectorMetadata) -> None:
        await self.connector.delete(
            resource_meta=self._resource_meta(metadata), **get_agent_secrets(), **metadata.configs
        )

    def _resource_meta(self, metadata: ConnectorMetadata) -> ResourceMeta:
        meta_type: type[ResourceMeta] = self.connector.metadata_type
        return meta_type.decode(metadata.encoded)


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


async def _native_inputs(
    template: tasks_pb2.TaskTemplate, literals: literals_pb2.LiteralMap
) -> dict[str, Any]:
    """The inputs as flyte-sdk's connector server decodes them: types guessed from the interface."""
    from flyte._internal.runtime.convert import Inputs, convert_from_inputs_to_native
    from flyte.models import NativeInterface, _has_default
    from flyte.types import TypeEngine
    from flyteidl2.task import common_pb2

    types: dict[str, tuple[type[Any], type[_has_default] | type[inspect._empty]]] = {
        str(entry.key): (TypeEngine.guess_python_type(entry.value.type), inspect.Parameter.empty)
        for entry in template.interface.inputs.variables
    }
    inputs = common_pb2.Inputs(literals=flyte2.named_literals(literals))
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
        outputs=flyte2.literal_map(proto.outputs, field="outputs") if proto.HasField("outputs") else None,
        custom_info=dict(MessageToDict(proto.custom_info)) if proto.HasField("custom_info") else {},
    )
