"""Run Flyte agents as serverless functions on AWS.

The agent SDK is importable from here; everything else lives in its own module (see the README).
"""

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
from serverless_agents.literals import Blob, StructuredDataset

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


def get_agent_secret(name: str) -> str:
    """The value of the secret the manifest names `name` for this agent (see serverless_agents.secrets)."""
    from serverless_agents.secrets import get_agent_secret as _get

    return _get(name)
