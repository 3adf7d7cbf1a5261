"""flytekit connectors, unchanged, as agents: a class deriving from flytekit's `AsyncConnectorBase` or
`SyncConnectorBase` (or their older names `AsyncAgentBase` / `SyncAgentBase`, the same classes), from a
`flytekitplugins-*` package or a team's own code, named in agents.toml runs in the Lambdas like any agent.

    [agents.chatgpt]
    class = "flytekitplugins.openai.chatgpt.connector:ChatGPTConnector"
    requirements = ["flytekitplugins-openai==1.16.30"]
    secrets = { FLYTE_OPENAI_API_KEY = "arn:aws:secretsmanager:...:secret:openai-key" }

`AgentSettings.load_class` sees a flytekit connector class (`agents.connectors.as_agent_class`) and asks
`connector_agent` for its agent class: async for an `AsyncConnectorBase`, sync for a `SyncConnectorBase`.
flytekit connectors declare their task category in `__init__`, so the class is instantiated there to read
it; each agent instance makes its own connector (after a SnapStart restore too).

Calls are made as flytekit's connector service makes them (flytekit/extend/backend/connector_service.py):
`create(task_template=, inputs=, output_prefix=, task_execution_metadata=)` and
`do(task_template=, inputs=, output_prefix=)` with flytekit's `TaskTemplate`, `LiteralMap` and
`TaskExecutionMetadata` models of the request's messages; `get(resource_meta=)` and
`delete(resource_meta=)` with the `ResourceMeta` decoded by the connector's `metadata_type` from the bytes
its `encode()` made at create, kept as the task's resource metadata (`agent_metadata.EncodedResourceMeta`) so
they cross Lambdas. Methods may be plain or `async def`; a plain one runs in the calling thread (flytekit's
`mirror_async_methods` would move it to an executor thread, which would not see the secrets below).

Outputs: a `LiteralMap` model is taken as it is. A dict of Python values is converted by flytekit's
`TypeEngine` as its service does, typed by the task interface's outputs where it declares them (the
Python types flytekit guesses from the interface: a `list` needs its element type); values that are
already flytekit `Literal`s pass as they are (flytekitplugins-snowflake returns one).

Secrets: `get_connector_secret(name)` (flytekit.extend.backend.utils) reads
`flytekit.current_context().secrets.get(key=name)`, which looks in environment variables, then files.
During each call the connector runs in a flytekit context of its own, set in a context variable (this
call's thread or asyncio task only; no other agent's call, and nothing global, changes), whose secrets
manager answers from `secrets.get_agent_secret`: the agent's Secrets Manager mapping in agents.toml, masked
like every other secret. A name is the key (`get(key="x")`: secret "x"), or group, group version and key
joined by "_" as flytekit names their environment variables.

Failures, as flytekit maps them: its service answers every exception with gRPC INTERNAL
(`_handle_exception`), which propeller turns into a retryable failure (flyteplugins/go/tasks/
pluginmachinery/internal/webapi/launcher.go). So an exception here becomes `RetryableAgentError` (the
state machine retries it, the task ends RETRYABLE_FAILED), except flytekit's non-recoverable user errors
(`FlyteUserException` and its subclasses, but not `FlyteRecoverableException`, as flytekit's task
entrypoint classifies them), which end FAILED, and this project's own errors (a secret missing from
agents.toml), which keep their meaning. A `Resource` keeps the phase the connector gave it, its message on
one line. The message of an exception reaches Flyte as its type and text on one line, masked.

flytekit is imported by this module only: install the `flytekit` extra for such agents' Lambdas.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from flyteidl.admin import agent_pb2
from flyteidl.core import types_pb2
from flytekit.core.context_manager import FlyteContextManager, SecretsManager, flyte_context_Var
from flytekit.core.type_engine import TypeEngine
from flytekit.exceptions.base import FlyteRecoverableException
from flytekit.exceptions.user import FlyteUserException
from flytekit.extend.backend.base_connector import AsyncConnectorBase, SyncConnectorBase
from flytekit.models import literals as literal_models
from flytekit.models import task as task_models
from flytekit.models.types import LiteralType
from pydantic import Field

from serverless_agents.agent import AsyncAgentBase, LogLink, Phase, Resource, SyncAgentBase
from serverless_agents.agent_metadata import EncodedResourceMeta
from serverless_agents.agents.connectors import connector_agent_class
from serverless_agents.exceptions import ManifestError, RetryableAgentError, ServerlessAgentsError
from serverless_agents.flyte import wire
from serverless_agents.runtime.endings import one_line
from serverless_agents.security.secrets import get_agent_secret

if TYPE_CHECKING:
    from collections.abc import Callable

    from flyteidl.core import literals_pb2, tasks_pb2
    from flytekit.extend.backend.base_connector import Resource as ConnectorResource
    from flytekit.extend.backend.base_connector import ResourceMeta

    from serverless_agents.agent import TaskContext


class FlytekitConnectorMetadata(EncodedResourceMeta):
    #: The task interface's output types (`LiteralType` in protobuf JSON, by name): `get` types the
    #: connector's Python-valued outputs with them, as `do` does with the template at hand.
    output_types: dict[str, dict[str, Any]] = Field(default_factory=dict)


class FlytekitAsyncConnectorAgent(AsyncAgentBase[FlytekitConnectorMetadata]):
    """The agent for one `AsyncConnectorBase` class; `connector_agent` makes one subclass per class."""

    metadata_type = FlytekitConnectorMetadata
    connector_class: ClassVar[type[AsyncConnectorBase]]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        # One per agent instance, as the runtime makes them: a SnapStart restore makes new ones.
        self.connector = self.connector_class()

    async def create(self, task: TaskContext) -> FlytekitConnectorMetadata:
        with _connector_call():
            meta = await _called(
                self.connector.create,
                **_task_arguments(task),
                # flytekit's service always passes one: the request's, empty when propeller sent none.
                task_execution_metadata=task_models.TaskExecutionMetadata.from_flyte_idl(
                    task.execution_metadata or agent_pb2.TaskExecutionMetadata()
                ),
            )
        output_types = {name: wire.to_dict(t) for name, t in _output_types(task.template).items()}
        return FlytekitConnectorMetadata.of(meta.encode(), output_types=output_types)

    async def get(self, metadata: FlytekitConnectorMetadata) -> Resource:
        output_types = {
            name: wire.from_dict(types_pb2.LiteralType, data, field=f"output_types.{name}")
            for name, data in metadata.output_types.items()
        }
        with _connector_call():
            resource = await _called(self.connector.get, resource_meta=self._resource_meta(metadata))
            return await _resource(resource, output_types)

    async def delete(self, metadata: FlytekitConnectorMetadata) -> None:
        with _connector_call():
            await _called(self.connector.delete, resource_meta=self._resource_meta(metadata))

    def _resource_meta(self, metadata: FlytekitConnectorMetadata) -> ResourceMeta:
        meta: ResourceMeta = self.connector.metadata_type.decode(metadata.encoded)
        return meta


class FlytekitSyncConnectorAgent(SyncAgentBase):
    """The agent for one `SyncConnectorBase` class; `connector_agent` makes one subclass per class."""

    connector_class: ClassVar[type[SyncConnectorBase]]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.connector = self.connector_class()

    async def do(self, task: TaskContext) -> Resource:
        with _connector_call():
            resource = await _called(self.connector.do, **_task_arguments(task))
            return await _resource(resource, _output_types(task.template))


@functools.cache
def connector_agent(
    connector_class: type[AsyncConnectorBase | SyncConnectorBase],
) -> type[FlytekitAsyncConnectorAgent | FlytekitSyncConnectorAgent]:
    """The agent class serving `connector_class`'s task category (one class per connector, cached)."""
    try:
        connector = connector_class()
    except Exception as e:
        raise ManifestError(
            f"cannot make flytekit connector {connector_class.__module__}.{connector_class.__qualname__}: "
            f"{one_line(str(e))}"
        ) from e
    base: type[FlytekitAsyncConnectorAgent | FlytekitSyncConnectorAgent] = (
        FlytekitAsyncConnectorAgent
        if isinstance(connector, AsyncConnectorBase)
        else FlytekitSyncConnectorAgent
    )
    category = connector.task_category
    return connector_agent_class(base, connector_class, category.name, category.version)


class _AgentSecrets(SecretsManager):  # type: ignore[misc]
    """flytekit's secrets manager, answering from the agent's secrets in agents.toml."""

    def get(
        self,
        group: str | None = None,
        key: str | None = None,
        group_version: str | None = None,
        encode_mode: str = "r",
    ) -> Any:
        value = get_agent_secret("_".join(part for part in (group, group_version, key) if part))
        # flytekit reads the secret's file in `encode_mode`: "rb" gives bytes.
        return value.encode() if "b" in encode_mode else value


@contextlib.contextmanager
def _connector_call() -> Iterator[None]:
    """A flytekit context whose secrets are the agent's, and flytekit's failures as it maps them."""
    current = FlyteContextManager.current_context()  # initializes flytekit's context in a new thread
    params = current.user_space_params
    if params is not None:
        # A copy of this thread's parameters: flytekit offers no builder for the secrets manager.
        params = type(params).new_builder(params).build()
        params._secrets_manager = _AgentSecrets()
    context = current.with_execution_state(
        current.new_execution_state().with_params(user_space_params=params)
    ).build()
    # A new list, not flytekit's push_context (which appends to the list other contexts may share).
    token = flyte_context_Var.set([*flyte_context_Var.get(), context])
    try:
        yield
    except ServerlessAgentsError:
        raise
    except FlyteUserException as e:
        if isinstance(e, FlyteRecoverableException):
            raise _retryable(e) from None
        raise
    except Exception as e:
        raise _retryable(e) from None
    finally:
        flyte_context_Var.reset(token)


def _retryable(error: Exception) -> RetryableAgentError:
    return RetryableAgentError(one_line(f"{type(error).__name__}: {error}"))


async def _called(method: Callable[..., Any], **kwargs: Any) -> Any:
    result = method(**kwargs)
    return await result if inspect.isawaitable(result) else result


def _task_arguments(task: TaskContext) -> dict[str, Any]:
    """What create and do get, as flytekit's service makes them: its models of the request's messages."""
    return {
        "task_template": task_models.TaskTemplate.from_flyte_idl(task.template),
        "inputs": literal_models.LiteralMap.from_flyte_idl(task.literals),
        "output_prefix": task.output_prefix,
    }


def _output_types(template: tasks_pb2.TaskTemplate) -> dict[str, types_pb2.LiteralType]:
    return {name: variable.type for name, variable in template.interface.outputs.variables.items()}


async def _resource(
    resource: ConnectorResource, output_types: Mapping[str, types_pb2.LiteralType]
) -> Resource:
    """flytekit's Resource as this project's: its phase, message, links, custom info, and outputs."""
    return Resource(
        phase=Phase(int(resource.phase)),
        message=one_line(resource.message or ""),
        log_links=[LogLink(link.name, link.uri) for link in resource.log_links or []],
        outputs=await _literal_map(resource.outputs, output_types),
        custom_info=dict(resource.custom_info or {}),
    )


async def _literal_map(
    outputs: literal_models.LiteralMap | Mapping[str, Any] | None,
    output_types: Mapping[str, types_pb2.LiteralType],
) -> literals_pb2.LiteralMap | None:
    if outputs is None:
        return None
    if isinstance(outputs, literal_models.LiteralMap):
        return outputs.to_flyte_idl()
    values = {k: v for k, v in outputs.items() if not isinstance(v, literal_models.Literal)}
    hints = {
        name: TypeEngine.guess_python_type(LiteralType.from_flyte_idl(output_types[name]))
        for name in values
        if name in output_types
    }
    literal_map = await TypeEngine.dict_to_literal_map_pb(
        FlyteContextManager.current_context(), values, hints
    )
    for name, value in outputs.items():
        if isinstance(value, literal_models.Literal):
            literal_map.literals[name].CopyFrom(value.to_flyte_idl())
    return literal_map
