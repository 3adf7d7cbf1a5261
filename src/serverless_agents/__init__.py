"""Run Flyte agents as serverless functions on AWS.

The agent SDK is importable from here; everything else lives in its own module (see the README). The
names are loaded on first access (PEP 562): a Lambda importing `serverless_agents.runtime.settings` or `.aws`
does not pay for pydantic and flyteidl before it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serverless_agents.agent import (
        AsyncAgentBase,
        BaseSensor,
        LogLink,
        Phase,
        Resource,
        ResourceMetadata,
        SyncAgentBase,
        TaskContext,
    )
    from serverless_agents.exceptions import AgentError, RetryableAgentError
    from serverless_agents.flyte.literals import Blob, StructuredDataset

_EXPORTS = {
    "AsyncAgentBase": "serverless_agents.agent",
    "BaseSensor": "serverless_agents.agent",
    "LogLink": "serverless_agents.agent",
    "Phase": "serverless_agents.agent",
    "Resource": "serverless_agents.agent",
    "ResourceMetadata": "serverless_agents.agent",
    "SyncAgentBase": "serverless_agents.agent",
    "TaskContext": "serverless_agents.agent",
    "AgentError": "serverless_agents.exceptions",
    "RetryableAgentError": "serverless_agents.exceptions",
    "Blob": "serverless_agents.flyte.literals",
    "StructuredDataset": "serverless_agents.flyte.literals",
}

__all__ = [
    "AgentError",
    "AsyncAgentBase",
    "BaseSensor",
    "Blob",
    "LogLink",
    "Phase",
    "Resource",
    "ResourceMetadata",
    "RetryableAgentError",
    "StructuredDataset",
    "SyncAgentBase",
    "TaskContext",
    "get_agent_secret",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def get_agent_secret(name: str) -> str:
    """The value of the secret the manifest names `name` for this agent (see
    serverless_agents.security.secrets)."""
    from serverless_agents.security.secrets import get_agent_secret as _get

    return _get(name)
