"""Loading the one agent a per-agent Lambda serves, and the deployment's registry, once per container.

In a Lambda bundle the manifest is read compiled (`serverless_agents.deployment.compiled_manifest`: no
pydantic), elsewhere (`up`, tests) parsed from its TOML; either answers the same attributes and methods.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from serverless_agents.deployment.compiled_manifest import read_compiled
from serverless_agents.deployment.registry import ROUTES_FILE, AgentRegistry
from serverless_agents.exceptions import ManifestError
from serverless_agents.security.secrets import AgentSecrets, register_agent_secrets

if TYPE_CHECKING:
    from pathlib import Path

    from serverless_agents.deployment.manifest import AgentSettings, Manifest


@dataclass(frozen=True)
class LoadedAgent:
    name: str
    settings: AgentSettings
    instance: Any


@functools.cache
def cached_manifest(path: Path) -> Manifest:
    """The manifest at `path`: its compiled form when one beside it was compiled from it (a bundle's),
    read as the model it was compiled from; else the TOML, parsed."""
    compiled = read_compiled(path)
    if compiled is not None:
        return cast("Manifest", compiled)
    from serverless_agents.deployment.manifest import load_manifest

    return load_manifest(path)


@functools.cache
def deployed_registry(manifest_path: Path) -> AgentRegistry:
    """Every agent of the deployment, for the functions that route tasks (api, sweeper): connectors' agents
    by the routes file beside the manifest when there is one (in a Lambda bundle), so that these functions
    need no connector SDK; otherwise (`up`, tests) every class imported."""
    routes_file = manifest_path.parent / ROUTES_FILE
    routes = json.loads(routes_file.read_text()) if routes_file.exists() else None
    return AgentRegistry.from_manifest(cached_manifest(manifest_path), routes)


def load_agent(manifest_path: Path, name: str | None) -> LoadedAgent:
    """The agent, made once per container; its secrets told to `serverless_agents.security.secrets` at every
    call (before the agent is made: its constructor may read them), so what an agent reads is its
    manifest's."""
    if not name:
        raise ManifestError("this function serves one agent, but SA_AGENT is not set")
    register_agent_secrets(manifest_path, name, _agent_secrets(manifest_path, name))
    return _loaded_agent(manifest_path, name)


@functools.cache
def _agent_secrets(manifest_path: Path, name: str) -> AgentSecrets:
    settings = cached_manifest(manifest_path).agent(name)
    return AgentSecrets(
        ids=settings.secret_ids,
        destinations={name: tuple(secret.destinations) for name, secret in settings.secrets.items()},
    )


@functools.cache
def _loaded_agent(manifest_path: Path, name: str) -> LoadedAgent:
    settings = cached_manifest(manifest_path).agent(name)
    return LoadedAgent(name=name, settings=settings, instance=settings.load_class()(config=settings.config))


def forget_agents() -> None:
    """Drop the agent instances made so far: the next `load_agent` makes each anew (after a SnapStart
    restore, so that no environment shares what an instance made before the snapshot)."""
    _loaded_agent.cache_clear()
