"""The deployed agents, keyed by Flyte task category (task type, version) and by manifest name.

Built explicitly from a manifest (flytekit's `ConnectorRegistry` without its import-time registration):
a module that defines an agent registers nothing by being imported. Sensors of Flyte's generic task type
`sensor` are told apart the way flytekit's connector does it: by the `sensor_module` / `sensor_name` that
flytekit writes into the template's `custom`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from serverless_agents.exceptions import AgentNotFound, DuplicateAgentError, InvalidRequest, ManifestError

SENSOR_TASK_TYPE = "sensor"
#: Beside agents.toml in every Lambda bundle (infra/cdk bundles.py writes it from the plan): the kind and task
#: category of each agent whose class wraps another SDK's connector (flytekit's, Flyte 2's). The api and
#: sweeper functions, which route tasks but never run an agent's code, take them from here instead of
#: importing the connector's module, whose SDK only the agent's own bundle family carries.
ROUTES_FILE = "agents.routes.json"
#: An index's key: a sensor's (module, name), or a task type and version.
K = TypeVar("K")

if TYPE_CHECKING:
    from serverless_agents.agent import AgentKind
    from serverless_agents.deployment.manifest import AgentClass, AgentSettings, Manifest


@dataclass(frozen=True)
class RegisteredAgent:
    name: str
    cls: AgentClass
    settings: AgentSettings

    @property
    def kind(self) -> AgentKind:
        return self.cls.kind

    @property
    def task_type(self) -> str:
        return self.cls.task_type

    @property
    def version(self) -> int:
        return self.cls.task_type_version


class AgentRegistry:
    def __init__(self) -> None:
        self._by_category: dict[tuple[str, int], RegisteredAgent] = {}
        self._by_sensor: dict[tuple[str, str], RegisteredAgent] = {}
        self._by_name: dict[str, RegisteredAgent] = {}

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, routes: Mapping[str, Mapping[str, Any]] | None = None
    ) -> AgentRegistry:
        """The manifest's agents, their classes imported; those in `routes` (`ROUTES_FILE`) by their route."""
        from serverless_agents.agents.connectors import routed_agent_class

        registry = cls()
        for name, settings in manifest.agents.items():
            route = (routes or {}).get(name)
            agent_cls = routed_agent_class(name, route) if route is not None else settings.load_class()
            entry = registry.register(name, agent_cls, settings)
            _check_sync_timeout(entry, manifest.deployment.api_timeout)
        return registry

    def connector_routes(self) -> dict[str, dict[str, Any]]:
        """`ROUTES_FILE`'s content: the route of each agent that runs another SDK's connector."""
        return {
            agent.name: {"kind": agent.kind.value, "task_type": agent.task_type, "version": agent.version}
            for agent in self
            if getattr(agent.cls, "adapter_module", None) is not None
        }

    def register(self, name: str, agent_cls: AgentClass, settings: AgentSettings) -> RegisteredAgent:
        from serverless_agents.agent import BaseSensor

        entry = RegisteredAgent(name, agent_cls, settings)
        key = (entry.task_type, entry.version)
        if name in self._by_name:
            raise DuplicateAgentError(f"agent name {name!r} is registered twice")
        if issubclass(agent_cls, BaseSensor) and entry.task_type == SENSOR_TASK_TYPE:
            identity = agent_cls.sensor_identity()
            _claim(self._by_sensor, identity, entry, f"the sensor {'.'.join(identity)}")
        else:
            _claim(self._by_category, key, entry, f"task type {key[0]!r} version {key[1]}")
        self._by_name[name] = entry
        return entry

    def for_task(
        self, task_type: str, version: int = 0, custom: Mapping[str, Any] | None = None
    ) -> RegisteredAgent:
        """The agent for a task; `custom` (the template's) picks among sensors of task type `sensor`."""
        if task_type == SENSOR_TASK_TYPE and (task_type, version) not in self._by_category:
            return self._sensor_for(custom or {})
        try:
            return self._by_category[(task_type, version)]
        except KeyError:
            raise AgentNotFound(
                f"no agent is deployed for task type {task_type!r} version {version}"
            ) from None

    def _sensor_for(self, custom: Mapping[str, Any]) -> RegisteredAgent:
        module, name = custom.get("sensor_module"), custom.get("sensor_name")
        if not (isinstance(module, str) and isinstance(name, str)):
            raise InvalidRequest(
                "template.custom.sensor_module", "a sensor task needs sensor_module and sensor_name in custom"
            )
        try:
            return self._by_sensor[(module, name)]
        except KeyError:
            raise AgentNotFound(f"no sensor is deployed for {module}.{name}") from None

    def by_name(self, name: str) -> RegisteredAgent:
        try:
            return self._by_name[name]
        except KeyError:
            raise AgentNotFound(f"no agent named {name!r} is deployed") from None

    def __iter__(self) -> Iterator[RegisteredAgent]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def _check_sync_timeout(entry: RegisteredAgent, api_timeout: int) -> None:
    """A sync call answers through API Gateway, which cuts it off after its integration timeout: an agent
    allowed longer would keep running with nobody left to hear its answer (and be retried by propeller)."""
    from serverless_agents.agent import AgentKind

    if entry.kind is AgentKind.SYNC and entry.settings.timeout > api_timeout:
        raise ManifestError(
            f"agents.{entry.name}.timeout: {entry.settings.timeout} s is more than API Gateway's integration "
            f"timeout ({api_timeout} s, [deployment] api_timeout) allows a sync agent: lower it, or raise "
            "the account's integration timeout quota for Regional REST APIs and set api_timeout to match"
        )


def _claim(index: dict[K, RegisteredAgent], key: K, entry: RegisteredAgent, what: str) -> None:
    """`entry` serves `key` (`what` it is, for the error), unless another agent already does."""
    if key in index:
        raise DuplicateAgentError(f"agents {index[key].name!r} and {entry.name!r} both serve {what}")
    index[key] = entry
