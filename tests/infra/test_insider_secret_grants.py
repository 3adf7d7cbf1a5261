"""The CDK grant built from secret ids (issue 19, finding 9): a wildcard id never becomes a wildcard grant,
even from a caller that skipped the manifest's validation."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from infra.cdk.serverless_agents_cdk.agent_secrets import secret_arns

from serverless_agents.exceptions import ManifestError


@pytest.mark.parametrize(
    "secret_id", ["*", "prod/*", "token?", "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"]
)
def test_a_wildcard_secret_id_never_becomes_a_wildcard_grant(secret_id: str) -> None:
    stack = Stack(App(), "grants", env={"account": "123456789012", "region": "us-east-1"})

    with pytest.raises(ManifestError, match="a wildcard would grant every secret it matches"):
        secret_arns(stack, [secret_id])
