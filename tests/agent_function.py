"""An agent's function as its handler runs it, for tests that call an agent's code directly."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from serverless_agents.runtime.loading import load_agent
from serverless_agents.runtime.settings import current_settings, lambda_environment
from serverless_agents.security import redaction


@contextmanager
def agent_function(variables: Mapping[str, str]) -> Iterator[None]:
    """Its environment bound, its agent loaded (which tells `serverless_agents.security.secrets` the agent's
    secrets) and what it logs and prints masked: what every handler does before the agent's code runs."""
    with lambda_environment(variables):
        settings = current_settings()
        load_agent(settings.manifest_path, settings.agent)
        redaction.install()
        yield
