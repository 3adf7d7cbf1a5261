"""Connection secrets: the values Flyte 2's executor sends in `Connection.secrets`, kept in Secrets Manager
and nowhere else.

A Flyte 2 plugin task names Flyte secrets in its template's `custom.secrets` (`{"databricks_token":
"<Flyte secret name>"}`, flyte-sdk plugins/databricks task.py); the executor resolves each name for the
task's project and domain and sends the values with every CreateTask, GetTask and DeleteTask
(flyteorg/flyte flyteplugins/go/tasks/plugins/webapi/connector/plugin.go). The connector runs in Lambdas
that the state machine calls long after CreateTask answered, so the values have to be kept somewhere:

- the adapter forwards CreateTask's values to the api Lambda in the HTTPS body (`POST /v1/flyte2/tasks`);
- the api Lambda writes them into one Secrets Manager secret (`ConnectionSecretStore.put`) named
  `<deployment>/connections/<agent>/<project>/<domain>/<digest>`: the digest is over the keys and the Flyte
  secret names the template maps them to (never over a value), so the tasks of one project that use the
  same Flyte secrets share one secret, and another project's tasks never read it;
- only that name travels: in the execution input, the state, the agent's resource metadata;
- the agent's create, get and delete Lambdas read it through `secrets.get_connection_secrets`, the same
  accessor (and masking) as every other secret; IAM lets each agent's functions read its own prefix only.

Cleanup: each write tags the secret with when the last task using it must have ended (`EXPIRES_TAG`: now,
plus the agent's execution timeout and `end_within`, plus a margin); the sweeper deletes the secrets past
that time (`sweep`), so a secret lives as long as some task may still call the connector with it.
The values the executor sends again with GetTask and DeleteTask are the ones it sent at create (it keeps
the Connection in its resource state): the adapter does not forward them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from serverless_agents import aws
from serverless_agents.deployment.naming import connection_secret_name, connection_secret_prefix
from serverless_agents.exceptions import InvalidRequest, ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef

#: The tag holding the epoch second after which no task can still use the secret.
EXPIRES_TAG = "serverless-agents:expires"
#: Kept beyond the agent's own bound (a late finalize, a sweeper running behind).
EXPIRY_MARGIN_SECONDS = 24 * 3600
# A Flyte project or domain as a part of a Secrets Manager name: no `/`, only the characters it allows.
_SCOPE_PART = re.compile(r"^[A-Za-z0-9_.@+=-]{1,63}$")


def check_scope_part(value: str, field: str) -> str:
    if not _SCOPE_PART.match(value):
        raise InvalidRequest(
            field, "required with connection secrets: 1 to 63 of A-Z a-z 0-9 _ . @ + = - (the Flyte scope)"
        )
    return value


def take_secret_values(flyte2_request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A Flyte 2 CreateTaskRequest (protobuf JSON) without its `connection.secrets`, and those (key ->
    value). Only what is left travels and persists. Errors name keys, never a value."""
    connection = flyte2_request.get("connection")
    if connection is None:
        return dict(flyte2_request), {}
    if not isinstance(connection, dict):
        raise InvalidRequest("flyte2Request.connection", "must be a Connection (a JSON object)")
    secrets = connection.get("secrets") or {}
    if not isinstance(secrets, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in secrets.items()
    ):
        raise InvalidRequest("flyte2Request.connection.secrets", "must map names to strings")
    stripped = {key: value for key, value in connection.items() if key != "secrets"}
    rest = {key: value for key, value in flyte2_request.items() if key != "connection"}
    return ({**rest, "connection": stripped} if stripped else rest), dict(secrets)


def secret_names(values: Mapping[str, str], custom: Mapping[str, Any]) -> dict[str, str]:
    """Each key's Flyte secret name, from the template's `custom.secrets` (what the executor resolved:
    plugin.go reads the Connection out of the custom); the keys must be exactly those."""
    declared = custom.get("secrets") or {}
    if not isinstance(declared, dict) or set(values) != set(declared):
        known = ", ".join(sorted(declared)) if isinstance(declared, dict) else "none"
        raise InvalidRequest(
            "connection.secrets",
            f"its keys ({', '.join(sorted(values))}) must be those of the task template's custom.secrets "
            f"({known}), which the executor resolves",
        )
    return {key: str(declared[key]) for key in values}


def names_digest(names: Mapping[str, str]) -> str:
    """What tells one set of Flyte secrets from another: the keys and the Flyte secret names, no value."""
    canonical = json.dumps(dict(sorted(names.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


class ConnectionSecretStore:
    """The api's and the sweeper's side: write a task's connection secrets, delete the expired ones."""

    def __init__(
        self, deployment: str, *, client: SecretsManagerClient, clock: Callable[[], float] = time.time
    ) -> None:
        self.deployment = deployment
        self._client = client
        self._clock = clock

    def put(
        self,
        agent: str,
        project: str,
        domain: str,
        names: Mapping[str, str],
        values: Mapping[str, str],
        bound_seconds: float,
    ) -> str:
        """Keep `values` (key -> value) for the agent's tasks in `project`/`domain`; the secret's name.

        `names` are the Flyte secret names the template maps the keys to. The same names in the same
        scope resolve to the same values (rotated ones replace the old), so one secret serves them all.
        """
        name = connection_secret_name(
            self.deployment,
            agent,
            check_scope_part(project, "taskExecutionMetadata.taskExecutionId...executionId.project"),
            check_scope_part(domain, "taskExecutionMetadata.taskExecutionId...executionId.domain"),
            names_digest(names),
        )
        body = json.dumps(dict(sorted(values.items())), separators=(",", ":"))
        expires = int(self._clock() + bound_seconds + EXPIRY_MARGIN_SECONDS)
        tags: list[TagTypeDef] = [{"Key": EXPIRES_TAG, "Value": str(expires)}]
        client = self._client
        # Errors name the operation and AWS's error code, never the request: its parameters hold values.
        with _without_values(f"could not keep the connection secrets {sorted(values)}"):
            try:
                client.create_secret(
                    Name=name,
                    SecretString=body,
                    Tags=tags,
                    Description="Flyte 2 Connection secrets (serverless-agents); the sweeper deletes it",
                )
            except client.exceptions.ResourceExistsException:
                if client.get_secret_value(SecretId=name)["SecretString"] != body:
                    client.put_secret_value(SecretId=name, SecretString=body)
                client.tag_resource(SecretId=name, Tags=tags)
        return name

    def sweep(self) -> list[str]:
        """Delete the deployment's connection secrets whose tasks have all ended; their names."""
        deleted: list[str] = []
        now = self._clock()
        prefix = connection_secret_prefix(self.deployment)
        with _without_values("could not sweep connection secrets"):
            pages = self._client.get_paginator("list_secrets").paginate(
                Filters=[{"Key": "name", "Values": [prefix]}]
            )
            for page in pages:
                for secret in page["SecretList"]:
                    name = secret.get("Name", "")
                    if not name.startswith(prefix) or not _expired(secret.get("Tags", []), now):
                        continue
                    # Asked again just before deleting: a create may have extended it since the listing.
                    if not _expired(self._client.describe_secret(SecretId=name).get("Tags", []), now):
                        continue
                    self._client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
                    deleted.append(name)
        return deleted


def _expired(tags: Sequence[TagTypeDef], now: float) -> bool:
    for tag in tags:
        if tag.get("Key") == EXPIRES_TAG:
            try:
                return float(tag.get("Value", "")) < now
            except ValueError:
                return False
    return False  # not written by `put`: never ours to delete


@contextmanager
def _without_values(doing: str) -> Iterator[None]:
    """Secrets Manager's errors as `ServiceUnavailable` naming AWS's error code only, chained to nothing:
    botocore's messages (a parameter validation error) and a traceback's locals may quote a request's
    parameters, which hold the values."""
    try:
        yield
    except Exception as e:
        code = aws.error_code(e) or type(e).__name__
        error = ServiceUnavailable(f"{doing}: Secrets Manager answered {code}")
    else:
        return
    raise error from None
