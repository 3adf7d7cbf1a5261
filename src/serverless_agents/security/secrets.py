"""Agent secrets from AWS Secrets Manager, by the names the manifest gives them.

    [agents.chat]
    secrets = { api_key = "arn:aws:secretsmanager:...:secret:openai-key" }

An agent calls `get_agent_secret("api_key")`. Values are cached per container (per Lambda cold start):
a rotated secret reaches new containers, and a warm one never pays for a second lookup. The value never
travels on the wire, in the state machine or in the tasks table.

Which secrets an agent has is told to this module where the agent is loaded (`runtime.loading.load_agent`
calls `register_agent_secrets`): it reads no manifest itself. The agent a call is for is the invocation's
(`SA_AGENT`, bound per invocation: the local stack runs many functions in one process).

Every value read here is remembered for the life of the container (`serverless_agents.security.masking`), and
masked wherever text leaves the agent's code: see `serverless_agents.security.redaction`. A value shorter than
`MIN_SECRET` characters is refused when read: it cannot be masked without masking ordinary text, and no
credential is that short. What an agent sends on purpose (an HTTP header) goes only where the manifest lets
it: `agent_secret_destinations` gives `serverless_agents.security.outbound` those rules.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serverless_agents import aws
from serverless_agents.exceptions import ManifestError
from serverless_agents.runtime.settings import AGENT, current_settings, environ
from serverless_agents.security.masking import MIN_SECRET, known

if TYPE_CHECKING:
    from serverless_agents.deployment.manifest import SecretDestination


@dataclass(frozen=True)
class AgentSecrets:
    """One agent's secrets as the manifest declares them: name -> secret id, and where each may go."""

    ids: Mapping[str, str]
    destinations: Mapping[str, tuple[SecretDestination, ...]]


#: By (manifest, agent): the local stack, and tests, hold several manifests in one process.
_registered: dict[tuple[Path, str], AgentSecrets] = {}
_registered_lock = threading.Lock()


def register_agent_secrets(manifest_path: Path, agent: str, secrets: AgentSecrets) -> None:
    """What `agent` of that manifest may read, and send where: told by whoever loads the agent."""
    with _registered_lock:
        _registered[manifest_path, agent] = secrets


def _registered_secrets() -> tuple[str, AgentSecrets | None]:
    """The invocation's agent (`SA_AGENT`), and its secrets if it was loaded."""
    agent = environ().get(AGENT) or ""
    if not agent:
        return "", None
    return agent, _registered.get((current_settings().manifest_path, agent))


def get_agent_secret(name: str) -> str:
    agent, secrets = _agent_secret_ids(f"secret {name!r}")
    if name not in secrets:
        raise ManifestError(
            f"agent {agent!r} has no secret {name!r} in agents.toml (it has: {sorted(secrets)})"
        )
    return _remembered(name, secrets[name])


def get_agent_secrets() -> dict[str, str]:
    """Every secret of the agent, by name: for code that takes its credentials as keyword arguments
    (Flyte 2 connectors, which flyte-sdk's server calls with the `Connection` secrets that way)."""
    _, secrets = _agent_secret_ids("the agent's secrets")
    return {name: _remembered(name, secret_id) for name, secret_id in secrets.items()}


def get_connection_secrets(secret_id: str, scope: tuple[str, str] | None = None) -> dict[str, str]:
    """The Connection secrets Flyte 2's executor sent for a task (see `serverless_agents.aws.
    connection_secrets`), by key: kept in one JSON secret under this agent's own prefix (IAM allows no
    other; checked here too), and, given the task's `scope` (Flyte project, domain), that scope's.
    Masked as `{secret:<key>}` like every secret read here."""
    from serverless_agents.deployment.naming import connection_secret_prefix

    settings = current_settings()
    agent, _ = _agent_secret_ids("connection secrets")
    prefix = connection_secret_prefix(settings.deployment, agent)
    if scope is not None:
        prefix += "".join(f"{part}/" for part in scope)
    rest = secret_id[len(prefix) :] if secret_id.startswith(prefix) else ""
    if not rest or (scope is not None and "/" in rest):
        owner = f"project/domain {'/'.join(scope)}" if scope else f"agent {agent!r}"
        raise ManifestError(f"connection secret {secret_id!r} is not {owner}'s")
    stored = json.loads(_secret_value(secret_id))
    if not isinstance(stored, dict):
        raise ManifestError(f"connection secret {secret_id!r} does not hold a JSON object")
    values = {str(key): str(value) for key, value in stored.items()}
    mask_secrets(values)
    return values


def mask_secrets(values: dict[str, str]) -> None:
    """Mask `values` (name -> value) from now on, as if read here: for secrets this process is handed
    rather than reads (the api Lambda holds Flyte 2's Connection secrets while it stores them)."""
    for name, value in values.items():
        _remember(name, value)


def _remembered(name: str, secret_id: str) -> str:
    """The value, remembered to be masked from now on: every value an agent reads passes here."""
    value = _secret_value(secret_id)
    if len(value) < MIN_SECRET:
        raise ManifestError(
            f"secret {name!r} ({secret_id}) holds {len(value)} character(s): a secret shorter than "
            f"{MIN_SECRET} cannot be masked in messages and logs without masking ordinary text"
        )
    _remember(name, value)
    return value


def _remember(name: str, value: str) -> None:
    """Mask `value` from now on (`serverless_agents.security.redaction` masks what this process says)."""
    known.remember(name, value)


def _agent_secret_ids(asked_for: str) -> tuple[str, Mapping[str, str]]:
    agent, registered = _registered_secrets()
    if not agent:
        raise ManifestError(f"{asked_for} asked for outside an agent's function (SA_AGENT is not set)")
    if registered is None:
        raise ManifestError(
            f"{asked_for} asked for before agent {agent!r} was loaded (runtime.loading.load_agent)"
        )
    return agent, registered.ids


def agent_secret_destinations() -> Mapping[str, tuple[SecretDestination, ...]]:
    """name -> where the manifest lets that secret of this agent go (the outbound client's rules); empty
    outside an agent's function, and before its agent is loaded, where no secret is read either."""
    _, registered = _registered_secrets()
    return registered.destinations if registered else {}


#: Secret values by id, handed in instead of read from Secrets Manager: bound for the length of a call by
#: the in-process test tier (`serverless_agents.testing.LocalAgent`), as `settings` binds an environment.
_handed_in: ContextVar[Mapping[str, str] | None] = ContextVar("handed_in_secrets", default=None)


@contextmanager
def handed_in_secrets(values: Mapping[str, str]) -> Iterator[None]:
    """Answer secret reads from `values` (secret id -> value) within this block, never from AWS: an id
    missing from them is Secrets Manager's "not found", as for a secret nobody created."""
    token = _handed_in.set(values)
    try:
        yield
    finally:
        _handed_in.reset(token)


def _secret_value(secret_id: str) -> str:
    handed = _handed_in.get()
    if handed is None:
        return _stored_value(secret_id)
    if secret_id not in handed:
        from botocore.exceptions import ClientError

        not_found = "Secrets Manager can't find the specified secret."
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": not_found}}, "GetSecretValue"
        )
    return handed[secret_id]


@functools.cache
def _stored_value(secret_id: str) -> str:
    with aws.transient_errors_as_unavailable("Secrets Manager"):
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(value["SecretString"])


def forget_secrets() -> None:
    """Forget every remembered value (tests: a new container)."""
    known.clear()
    _stored_value.cache_clear()
