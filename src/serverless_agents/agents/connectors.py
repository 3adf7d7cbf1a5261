"""Connectors written for another SDK, run as agents: what the adapters share.

A class named in agents.toml may be a connector of flytekit (`AsyncConnectorBase` / `SyncConnectorBase`,
adapted by `flytekit_connector`) or of Flyte 2's SDK (`flyte.connectors.AsyncConnector`, adapted by
`flyte2_connector`). Such a class is not an agent: `as_agent_class` finds the adapter module of its SDK and
asks it (`connector_agent`) for the agent class serving it, made by `connector_agent_class`: a subclass of
the adapter's agent class, one per connector class, naming the connector's task category and the adapter
module, whose family's bundle (infra/cdk bundles.py) carries the SDK.

An SDK is considered only when its module is imported already: a connector's module imports it, and a
manifest of the project's own agents never pays for importing flytekit or flyte.

The api and sweeper functions run from the core bundle, without the SDKs: they know a connector's agent by
its route (`routed_agent_class`, from the routes file the bundler writes beside agents.toml).

The connector's resource metadata is its own `ResourceMeta`, bytes of its `encode()`: they travel as
base64 text in the task's resource metadata (`agent_metadata.EncodedResourceMeta`, apart from this module,
which every agent's loading imports, so that only a function whose agent has metadata loads pydantic)
and are decoded by the connector's
`metadata_type` in `get` and `delete`, in another Lambda.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from serverless_agents.exceptions import ManifestError

A = TypeVar("A", bound=type)

#: Each SDK: the module defining its connector base classes, their names, and the module adapting them.
CONNECTOR_SDKS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("flyte.connectors", ("AsyncConnector",), "serverless_agents.agents.flyte2_connector"),
    (
        # flytekit's older names (`base_agent.AsyncAgentBase`, `SyncAgentBase`) are these same classes.
        "flytekit.extend.backend.base_connector",
        ("AsyncConnectorBase", "SyncConnectorBase"),
        "serverless_agents.agents.flytekit_connector",
    ),
)


def as_agent_class(cls: object) -> object:
    """`cls`, or the agent class serving it when it is a connector class of an SDK imported already."""
    for sdk_module, base_names, adapter in CONNECTOR_SDKS:
        sdk = sys.modules.get(sdk_module)
        if sdk is None or not isinstance(cls, type):
            continue
        if issubclass(cls, tuple(getattr(sdk, name) for name in base_names)):
            agent_class: object = importlib.import_module(adapter).connector_agent(cls)
            return agent_class
    return cls


def routed_agent_class(name: str, route: Mapping[str, Any]) -> type:
    """A connector's agent class as the api and sweeper functions know it, without its SDK: its kind and
    task category, from `registry.ROUTES_FILE`. They route tasks to it; they never call it."""
    from serverless_agents.agent import AgentKind, AsyncAgentBase, SyncAgentBase

    try:
        base = {AgentKind.ASYNC: AsyncAgentBase, AgentKind.SYNC: SyncAgentBase}[AgentKind(route["kind"])]
        attributes = {"task_type": str(route["task_type"]), "task_type_version": int(route["version"])}
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(
            f"the route of agent {name!r} in the bundle's routes file is malformed: {e!r}"
        ) from e
    return type(
        f"Routed{base.__name__}", (base,), {"__doc__": f"Agent {name!r}, by its route.", **attributes}
    )


def connector_agent_class(
    base: A, connector_class: type, task_type: str, task_type_version: int, **attributes: Any
) -> A:
    """The agent class serving `connector_class`: a subclass of the adapter's `base`."""
    agent_class: A = type(  # type: ignore[assignment]
        f"{connector_class.__name__}Agent",
        (base,),
        {
            "__module__": connector_class.__module__,
            "__doc__": f"{connector_class.__module__}.{connector_class.__qualname__}, as an agent.",
            "connector_class": connector_class,
            #: The module whose code runs the connector: its family's bundle carries the SDK.
            "adapter_module": base.__module__,
            "task_type": task_type,
            "task_type_version": task_type_version,
            **attributes,
        },
    )
    return agent_class
