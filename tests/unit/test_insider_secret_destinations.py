"""The manifest's secrets as an insider would write them (issue 19, findings 1 and 9): a wildcard secret id
that grants every secret, a destination on a host that serves every tenant, an agent sending secrets
over HTTP with nowhere declared. Each is a ManifestError naming the field, at load."""

from __future__ import annotations

import pytest

from serverless_agents.deployment.manifest import parse_manifest
from serverless_agents.exceptions import ManifestError

AGENT = '[agents.hook]\nclass = "serverless_agents.agents.webhook:WebhookAgent"\n'


def _error(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="test.toml")
    return str(caught.value)


@pytest.mark.parametrize(
    "secret_id",
    [
        "*",
        "prod/*",
        "prod/?",
        "arn:*",
        "arn:aws:secretsmanager:*:*:secret:*",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*",
        "arn:aws:secretsmanager:us-east-1:*:secret:token",
        "arn:aws:secretsmanager:*:123456789012:secret:token",
        "arn:aws:ssm:us-east-1:123456789012:parameter/token",
        "arn:aws:secretsmanager:us-east-1:123456789012:token",
        "",
        "token name",
    ],
)
def test_a_secret_id_is_a_secret_name_or_arn_without_wildcards(secret_id: str) -> None:
    for secrets in (f'secrets = {{ token = "{secret_id}" }}', f'secrets.token = {{ id = "{secret_id}" }}'):
        message = _error(f'[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n{secrets}\n')

        assert "agents.job.secrets.token.id: " in message
        assert "no wildcards" in message


@pytest.mark.parametrize(
    "secret_id",
    [
        "openai-key",
        "team/prod/openai_key+v2=@.x",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-key",
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:flyte/key-AbC123",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:key",
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:key",
    ],
)
def test_secret_names_and_arns_are_accepted(secret_id: str) -> None:
    manifest = parse_manifest(
        f'[agents.job]\nclass = "serverless_agents.examples:JobAgent"\nsecrets = {{ t = "{secret_id}" }}\n'
    )

    assert manifest.agent("job").secret_ids == {"t": secret_id}


@pytest.mark.parametrize(
    "host", ["hooks.slack.com", "api.github.com", "hooks.zapier.com", "discord.com", "s3.amazonaws.com"]
)
@pytest.mark.parametrize("path", [None, "/", "//"])
def test_a_multi_tenant_host_needs_a_path_prefix(host: str, path: str | None) -> None:
    where = "" if path is None else f', path = "{path}"'
    destination = f'{{ host = "{host}"{where}, in = ["body"] }}'

    message = _error(f'{AGENT}secrets.t = {{ id = "t", destinations = [{destination}] }}\n')

    assert "agents.hook.secrets.t.destinations.0: " in message
    assert f"{host} serves many accounts" in message


@pytest.mark.parametrize(
    ("destination", "field"),
    [
        ('{ host = "https://api.openai.com", in = ["header"] }', "destinations.0.host"),
        ('{ host = "*.openai.com", in = ["header"] }', "destinations.0.host"),
        ('{ host = "API.openai.com", in = ["header"] }', "destinations.0.host"),
        ('{ host = "api.openai.com:443", in = ["header"] }', "destinations.0.host"),
        ('{ host = "api.openai.com", in = [] }', "destinations.0.in"),
        ('{ host = "api.openai.com", in = ["cookie"] }', "destinations.0.in"),
        ('{ host = "api.openai.com" }', "destinations.0.in"),
        ('{ host = "api.openai.com", path = "v1", in = ["header"] }', "destinations.0.path"),
        ('{ host = "api.openai.com", path = "/v1/../x", in = ["header"] }', "destinations.0.path"),
        ('{ host = "api.openai.com", path = "/v1%2f", in = ["header"] }', "destinations.0.path"),
        ('{ host = "api.openai.com", in = ["header"], port = 1 }', "destinations.0.port"),
    ],
)
def test_a_bad_destination_names_its_field(destination: str, field: str) -> None:
    message = _error(f'{AGENT}secrets.t = {{ id = "t", destinations = [{destination}] }}\n')

    assert f"agents.hook.secrets.t.{field}" in message


@pytest.mark.parametrize(
    "class_path",
    ["serverless_agents.agents.webhook:WebhookAgent", "serverless_agents.agents.openai_chat:ChatGPTAgent"],
)
def test_an_agent_sending_secrets_over_http_must_declare_where(class_path: str) -> None:
    """The webhook's token with no destinations could go wherever a template points."""
    manifest = parse_manifest(f'[agents.hook]\nclass = "{class_path}"\nsecrets = {{ slack_token = "t" }}\n')

    with pytest.raises(ManifestError, match=r"^secrets\.slack_token: .* declares its destinations"):
        manifest.agent("hook").load_class()


def test_a_secret_for_a_library_s_own_connections_keeps_the_plain_form() -> None:
    snowflake = 'class = "serverless_agents.agents.snowflake:SnowflakeAgent"'
    manifest = parse_manifest(f'[agents.sf]\n{snowflake}\nsecrets = {{ private_key = "k" }}\n')

    assert manifest.agent("sf").secrets["private_key"].destinations == []
    assert manifest.agent("sf").load_class().task_type == "snowflake"
