"""Agent secrets from AWS Secrets Manager, by the names the manifest gives them.

    [agents.chat]
    secrets = { api_key = "arn:aws:secretsmanager:...:secret:openai-key" }

An agent calls `get_agent_secret("api_key")`. Values are cached per container (per Lambda cold start):
a rotated secret reaches new containers, and a warm one never pays for a second lookup. The value never
travels on the wire, in the state machine or in the tasks table.
"""

from __future__ import annotations

import functools

from serverless_agents import aws
from serverless_agents.exceptions import ManifestError
from serverless_agents.runtime.loading import cached_manifest
from serverless_agents.settings import current_settings


def get_agent_secret(name: str) -> str:
    agent, secrets = _agent_secret_ids(f"secret {name!r}")
    if name not in secrets:
        raise ManifestError(
            f"agent {agent!r} has no secret {name!r} in agents.toml (it has: {sorted(secrets)})"
        )
    return _secret_value(secrets[name])


def get_agent_secrets() -> dict[str, str]:
    """Every secret of the agent, by name: for code that takes its credentials as keyword arguments
    (Flyte 2 connectors, which flyte-sdk's server calls with the `Connection` secrets that way)."""
    _, secrets = _agent_secret_ids("the agent's secrets")
    return {name: _secret_value(secret_id) for name, secret_id in secrets.items()}


def _agent_secret_ids(asked_for: str) -> tuple[str, dict[str, str]]:
    settings = current_settings()
    if not settings.agent:
        raise ManifestError(f"{asked_for} asked for outside an agent's function (SA_AGENT is not set)")
    return settings.agent, cached_manifest(settings.manifest_path).agent(settings.agent).secrets


@functools.cache
def _secret_value(secret_id: str) -> str:
    with aws.transient_errors_as_unavailable("Secrets Manager"):
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(value["SecretString"])
