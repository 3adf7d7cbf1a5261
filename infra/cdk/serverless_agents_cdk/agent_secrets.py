"""An agent's secrets (`[agents.<name>] secrets` in the manifest), granted to that agent's functions alone.

The manifest gives each secret as an ARN or a name. Secrets Manager ARNs end in a random six-character
suffix (`...:secret:openai-key-AbC123`) that a manifest usually leaves out, so each grant names the secret
as given and with `-??????`: exactly one more suffix, which matches that secret and no other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam

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
