"""An agent's secrets (`[agents.<name>] secrets` in the manifest), granted to that agent's functions alone;
and the connection secrets a Flyte 2 executor sends (serverless_agents.aws.connection_secrets): written by the
api, deleted by the sweeper, under `<deployment>/connections/`, each agent's functions reading their own
`<deployment>/connections/<agent>/` alone.

The manifest gives each secret as an ARN or a name. Secrets Manager ARNs end in a random six-character
suffix (`...:secret:openai-key-AbC123`) that a manifest usually leaves out, so each grant names the secret
as given and with `-??????`: exactly one more suffix, which matches that secret and no other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam

from serverless_agents.deployment.naming import connection_secret_prefix
from serverless_agents.exceptions import ManifestError

from . import nag

if TYPE_CHECKING:
    from constructs import Construct

SUFFIX = "-??????"


def secret_arns(scope: Construct, secret_ids: Iterable[str]) -> list[str]:
    arns: list[str] = []
    for secret_id in secret_ids:
        if "*" in secret_id or "?" in secret_id:  # the manifest refuses these; a grant never widens
            raise ManifestError(f"secret id {secret_id!r}: a wildcard would grant every secret it matches")
        if secret_id.startswith("arn:"):
            arns += [secret_id, secret_id + SUFFIX]
        else:
            arns.append(
                Stack.of(scope).format_arn(
                    service="secretsmanager",
                    resource="secret",
                    resource_name=secret_id + SUFFIX,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            )
    return list(dict.fromkeys(arns))


def grant_agent_secrets(role: iam.Role, secret_ids: Iterable[str]) -> None:
    arns = secret_arns(role, secret_ids)
    if not arns:
        return
    role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=arns))
    nag.secret_suffix_wildcards(role, [arn for arn in arns if arn.endswith(SUFFIX)])


#: What the api does with connection secrets (ConnectionSecretStore.put), and the sweeper (sweep).
API_CONNECTION_ACTIONS = (
    "secretsmanager:CreateSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:TagResource",
)
SWEEPER_CONNECTION_ACTIONS = ("secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret")


def grant_connection_secrets(
    role: iam.IRole, deployment: str, actions: Iterable[str], agent: str | None = None
) -> None:
    """`actions` on the deployment's connection secrets, or on one agent's alone."""
    arn = Stack.of(role).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=connection_secret_prefix(deployment, agent) + "*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=[arn]))
    nag.connection_secret_prefix(role, arn)
