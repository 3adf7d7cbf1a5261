"""get_agent_secret: the manifest's name for a secret -> Secrets Manager, cached per container."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from serverless_agents import get_agent_secret
from serverless_agents.exceptions import ManifestError
from serverless_agents.secrets import _secret_value
from serverless_agents.settings import lambda_environment


@pytest.fixture
def agent_environment(tmp_path: Path) -> Iterator[str]:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="openai-key", SecretString="sk-test")["ARN"]
        manifest = tmp_path / "agents.toml"
        agent = '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'
        manifest.write_text(f'{agent}secrets = {{ api_key = "{arn}" }}\n')
        variables = {
            "SA_TASKS_TABLE": "t",
            "SA_PAYLOAD_BUCKET": "b",
            "SA_MANIFEST": str(manifest),
            "SA_AGENT": "echo",
        }
        _secret_value.cache_clear()
        with lambda_environment(variables):
            yield arn
        _secret_value.cache_clear()


def test_secret_is_read_by_its_manifest_name(agent_environment: str) -> None:
    assert get_agent_secret("api_key") == "sk-test"


def test_secret_value_is_cached_per_container(agent_environment: str) -> None:
    get_agent_secret("api_key")
    boto3.client("secretsmanager").put_secret_value(SecretId=agent_environment, SecretString="rotated")

    assert get_agent_secret("api_key") == "sk-test"


def test_unknown_secret_name_lists_the_known_ones(agent_environment: str) -> None:
    with pytest.raises(ManifestError, match=r"no secret 'token'.*\['api_key'\]"):
        get_agent_secret("token")


def test_secret_outside_an_agent_function_is_an_error(tmp_path: Path) -> None:
    with (
        lambda_environment({"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_AGENT": ""}),
        pytest.raises(ManifestError, match="SA_AGENT"),
    ):
        get_agent_secret("api_key")
