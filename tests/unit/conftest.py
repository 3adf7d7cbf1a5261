"""Unit tests' fixtures: secrets read as an agent's function reads them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from serverless_agents import get_agent_secret
from serverless_agents.security.secrets import forget_secrets
from tests.agent_function import agent_function


def _manifest(tmp_path: Path, arns: dict[str, str]) -> Path:
    manifest = tmp_path / "agents.toml"
    secrets = ", ".join(f'{name} = "{arn}"' for name, arn in arns.items())
    manifest.write_text(
        f'[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\nsecrets = {{ {secrets} }}\n'
    )
    return manifest


@pytest.fixture
def read_secrets(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Reads secrets as an agent's function does: stored in Secrets Manager, named in agents.toml."""
    with mock_aws():

        def read(**values: str) -> None:
            client = boto3.client("secretsmanager")
            arns = {
                name: client.create_secret(Name=name, SecretString=v)["ARN"] for name, v in values.items()
            }
            variables = {
                "SA_TASKS_TABLE": "t",
                "SA_PAYLOAD_BUCKET": "b",
                "SA_MANIFEST": str(_manifest(tmp_path, arns)),
                "SA_AGENT": "echo",
            }
            with agent_function(variables):
                for name in values:
                    get_agent_secret(name)

        forget_secrets()
        yield read
        forget_secrets()
