"""Loading the one agent a per-agent Lambda serves, once per container."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serverless_agents.exceptions import ManifestError
from serverless_agents.manifest import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

    from serverless_agents.manifest import AgentSettings, Manifest


@dataclass(frozen=True)
class LoadedAgent:
    name: str
    settings: AgentSettings
    instance: Any


@functools.cache
def cached_manifest(path: Path) -> Manifest:
    return load_manifest(path)


@functools.cache
def load_agent(manifest_path: Path, name: str | None) -> LoadedAgent:
    if not name:
        raise ManifestError("this function serves one agent, but SA_AGENT is not set")
    settings = cached_manifest(manifest_path).agent(name)
    return LoadedAgent(name=name, settings=settings, instance=settings.load_class()(config=settings.config))
