"""What a manifest deploys: its agents by kind, each with the bundle family its functions run from.

The plan is built the way the api Lambda builds its registry (`AgentRegistry.from_manifest`), so a manifest
that the deployed api would reject (a class that does not import, two agents serving one task type) fails
the synth instead of the first request. Every agent of the manifest is deployed: async, sync and sensors.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from serverless_agents.agent import AgentKind
from serverless_agents.exceptions import ManifestError
from serverless_agents.manifest import EXAMPLE_MANIFEST, AgentSettings, load_manifest, use_code_path
from serverless_agents.registry import AgentRegistry, RegisteredAgent

from .bundles import CORE, family_for_module

DEFAULT_MANIFEST = EXAMPLE_MANIFEST
#: The project's own packages: every bundle carries them, so an agent class there needs no extra code.
PROJECT_PACKAGES = ("serverless_agents", "functions")


@dataclass(frozen=True)
class PlannedAgent:
    name: str
    kind: AgentKind
    settings: AgentSettings
    #: The bundle its functions run from: "core", or the pyproject extra of its agent family.
    family: str


@dataclass(frozen=True)
class DeploymentPlan:
    manifest_path: Path
    deployment: str
    #: API Gateway's integration timeout (`[deployment] api_timeout`), which every sync agent fits.
    api_timeout: int
    agents: tuple[PlannedAgent, ...]
    #: Top-level packages (or modules) of agent classes outside this project, copied into every bundle.
    agent_code: tuple[Path, ...]

    @property
    def async_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.ASYNC)

    @property
    def sync_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.SYNC)

    @property
    def sensor_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.SENSOR)

    @property
    def families(self) -> tuple[str, ...]:
        """Every bundle the deployment needs; "core" always (the api and finalize functions)."""
        return tuple(sorted({CORE, *(a.family for a in self.agents)}))


def plan_deployment(manifest_path: str | Path) -> DeploymentPlan:
    path = Path(manifest_path).resolve()
    manifest = load_manifest(path)
    use_code_path(manifest, path)
    registry = AgentRegistry.from_manifest(manifest)
    agents = tuple(PlannedAgent(agent.name, agent.kind, agent.settings, _family(agent)) for agent in registry)
    return DeploymentPlan(
        manifest_path=path,
        deployment=manifest.deployment.name,
        api_timeout=manifest.deployment.api_timeout,
        agents=agents,
        agent_code=_agent_code(agent.settings.class_path for agent in registry),
    )


def _family(agent: RegisteredAgent) -> str:
    """The bundle by the module whose code runs: a Flyte 2 connector runs inside the project's connector
    agent (its `connector_class`), through the flyte SDK, whatever package defines it."""
    if getattr(agent.cls, "connector_class", None) is not None:
        return family_for_module("serverless_agents.agents.flyte2_connector")
    return family_for_module(agent.settings.class_path.partition(":")[0])


def _agent_code(class_paths: Iterable[str]) -> tuple[Path, ...]:
    roots: set[Path] = set()
    for class_path in class_paths:
        top = class_path.partition(":")[0].split(".")[0]
        if top in PROJECT_PACKAGES:
            continue
        spec = importlib.util.find_spec(top)  # imported already by the registry, so it is found
        if spec is None:
            raise ManifestError(f"cannot find the code of agent class {class_path!r}")
        locations = list(spec.submodule_search_locations or [])
        if len(locations) > 1:
            raise ManifestError(
                f"agent class {class_path!r} lives in namespace package {top!r} spread over "
                f"{len(locations)} directories: bundle it as one package"
            )
        if locations:
            roots.add(Path(locations[0]))
        elif spec.origin:
            roots.add(Path(spec.origin))
    return tuple(sorted(roots))
