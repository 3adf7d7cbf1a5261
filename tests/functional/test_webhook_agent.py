"""The webhook agent through the local stack (driven with the public `AgentTestClient`), against a fake HTTP
endpoint on 127.0.0.1.

Templates come from flytekit: its own `WebhookTask`, and the small typed task docs/agents/webhook.md shows
(`status` and `body` outputs), both serialized as `pyflyte register` would.
"""

from __future__ import annotations

import itertools
import sys
import time
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flytekit.extras
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.tools.translator import get_serializable

from serverless_agents.agent import Phase
from serverless_agents.testing import AgentTestClient, TaskResult
from tests.functional.conftest import Harness
from tests.functional.fake_http import FakeHttpServer, Reply

pytestmark = pytest.mark.functional

TOKEN = "xoxb-test-0123456789"
MANIFEST = """
[deployment]
name = "sa-webhook"

[agents.webhook]
class = "serverless_agents.agents.webhook:WebhookAgent"
config = { timeout = 1, allowed_hosts = ["127.0.0.1"], allow_private_networks = ["127.0.0.1"] }
secrets.slack_token = { id = "sa-test-slack-token", destinations = [{ host = "127.0.0.1", in = ["header"] }] }

# The example manifest's rules (agents.toml): Slack and one domain, no private network.
[agents.slackhook]
class = "tests.functional.secret_agents:SlackWebhookAgent"
config = { timeout = 1, allowed_hosts = ["slack.com", "*.slack.com", "*.example.com"] }

[agents.slackhook.secrets.slack_token]
id = "sa-test-slack-token"
destinations = [{ host = "slack.com", path = "/api/", in = ["header"] }]

# Any host (allowed_hosts = ["*"]): only the address rules stand in the way.
[agents.anyhost]
class = "tests.functional.secret_agents:AnyHostWebhookAgent"
config = { timeout = 1, allowed_hosts = ["*"] }

[agents.anyhost.secrets.slack_token]
id = "sa-test-slack-token"
destinations = [{ host = "slack.com", path = "/api/", in = ["header"] }]
"""
_runs = itertools.count()


class HttpCallTask(PythonTask):  # type: ignore[misc]
    """The typed webhook task of docs/agents/webhook.md: flytekit's template keys, `status` and `body` out."""

    def __init__(
        self,
        name: str,
        url: str,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        data: Any = None,
        inputs: dict[str, type] | None = None,
        timeout_sec: float = 10,
        task_type: str = "webhook",
    ) -> None:
        super().__init__(
            task_type=task_type,
            name=name,
            interface=Interface(inputs=inputs or {}, outputs={"status": int, "body": str}),
        )
        self._custom = {
            "url": url,
            "method": method,
            "headers": headers or {},
            "data": data,
            "timeout_sec": timeout_sec,
        }

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        return self._custom


def flytekit_webhook_task() -> type:
    """flytekit's WebhookTask. Its package's `__init__` also imports the connector, which needs httpx (not
    installed here); the task module needs only flytekit, so it is imported without that `__init__`."""
    name = "flytekit.extras.webhook"
    saved = sys.modules.get(name)
    package = types.ModuleType(name)
    package.__path__ = [str(Path(flytekit.extras.__file__).parent / "webhook")]
    sys.modules[name] = package
    try:
        from flytekit.extras.webhook.task import WebhookTask
    finally:
        if saved is not None:
            sys.modules[name] = saved
        else:
            sys.modules.pop(name, None)
    return WebhookTask


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


@contextmanager
def webhook_client(directory: Path, token: str) -> Iterator[AgentTestClient]:
    """The local stack with MANIFEST's agents, whose secret holds `token`."""
    manifest = directory / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest, secrets={"slack_token": token}) as client:
        yield client


@contextmanager
def webhook_stack(directory: Path, token: str) -> Iterator[Harness]:
    """The same stack, as tests/functional/test_insider_masking.py reads it."""
    with webhook_client(directory, token) as client:
        yield Harness(client.stack)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    with webhook_client(tmp_path_factory.mktemp("webhook"), TOKEN) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeHttpServer) -> None:
    fake.reset()


def webhook_request(task: PythonTask, inputs: dict[str, Any]) -> agent_pb2.CreateTaskRequest:
    """What propeller sends for the task: flytekit's template, flytekit's literals."""
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()
    ctx = FlyteContextManager.current_context()
    literals = TypeEngine.dict_to_literal_map(ctx, inputs, task.python_interface.inputs)
    execution = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id="n0",
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="demo", domain="development", name=f"hook{next(_runs)}"
            ),
        ),
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literals.to_flyte_idl(),
        output_prefix="s3://demo/outputs",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution),
    )


def outputs_of(result: TaskResult | agent_pb2.Resource, types_: dict[str, type]) -> dict[str, Any]:
    """The outputs as flytekit reads them back."""
    literals = result.literals if isinstance(result, TaskResult) else result.outputs
    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(literals), types_)


def shows(result: TaskResult, text: str) -> bool:
    """Whether `text` is anywhere in what the task answered: message, outputs, custom info, log links."""
    return text in f"{result!r} {result.literals}"


def slack_task(fake: FakeHttpServer, **overrides: Any) -> HttpCallTask:
    settings: dict[str, Any] = {
        "url": fake.url + "/hooks/{inputs.channel}",
        "headers": {"Authorization": "Bearer {secret:slack_token}", "X-Flyte-Run": "{inputs.run}"},
        "data": {"channel": "#{inputs.channel}", "text": "run {inputs.run} wrote {inputs.rows} rows"},
        "inputs": {"channel": str, "run": str, "rows": int},
    }
    return HttpCallTask(name=f"tests.slack{next(_runs)}", **(settings | overrides))


SLACK_INPUTS = {"channel": "alerts", "run": "r42", "rows": 3}


def test_posts_the_rendered_body_with_the_secret_header(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    fake.reply(Reply(200, "ok"))

    result = client.run(webhook_request(slack_task(fake), SLACK_INPUTS))

    assert result.phase is Phase.SUCCEEDED, result.message
    assert outputs_of(result, {"status": int, "body": str}) == {"status": 200, "body": "ok"}
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/hooks/alerts")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-flyte-run"] == "r42"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {"channel": "#alerts", "text": "run r42 wrote 3 rows"}
    assert not shows(result, TOKEN)


def test_a_lone_placeholder_keeps_the_input_type(client: AgentTestClient, fake: FakeHttpServer) -> None:
    fake.reply(Reply(201, {"id": 7}))
    task = slack_task(fake, data={"rows": "{inputs.rows}", "note": "rows={inputs.rows}"})

    result = client.run(webhook_request(task, SLACK_INPUTS))

    assert result.phase is Phase.SUCCEEDED, result.message
    assert outputs_of(result, {"status": int, "body": str}) == {"status": 201, "body": '{"id": 7}'}
    assert fake.last().json() == {"rows": 3, "note": "rows=3"}


def test_flytekit_webhook_task_get_with_its_info_output(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    webhook_task = flytekit_webhook_task()
    task = webhook_task(
        name=f"tests.lookup{next(_runs)}",
        url=fake.url + "/items/{inputs.item_id}",
        method="GET",
        headers={"Authorization": "Bearer {secret:slack_token}"},
        data={"q": "{inputs.s}"},
        dynamic_inputs={"s": str, "item_id": int},
        show_data=True,
        show_url=True,
    )
    fake.reply(Reply(200, {"found": True}))

    result = client.run(webhook_request(task, {"s": "flyte", "item_id": 10}))

    assert result.phase is Phase.SUCCEEDED, result.message
    sent = fake.last()
    assert (sent.method, sent.path) == ("GET", "/items/10?q=flyte")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert outputs_of(result, {"info": dict}) == {
        "info": {
            "status_code": 200,
            "response_data": '{"found": true}',
            "input_data": {"q": "flyte"},
            "url": fake.url + "/items/10",
        }
    }


def test_a_client_error_fails_with_the_status_and_body(client: AgentTestClient, fake: FakeHttpServer) -> None:
    fake.reply(Reply(404, "channel_not_found"))

    result = client.run(webhook_request(slack_task(fake), SLACK_INPUTS))

    assert result.phase is Phase.FAILED
    assert result.message == f"POST {fake.url}/hooks/alerts answered HTTP 404: channel_not_found"
    assert not result.literals.literals


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retryable(
    client: AgentTestClient, fake: FakeHttpServer, status: int
) -> None:
    fake.reply(Reply(status, "try later"))

    result = client.run(webhook_request(slack_task(fake), SLACK_INPUTS))

    assert result.phase is Phase.RETRYABLE_FAILED
    assert f"answered HTTP {status}: try later" in result.message
    assert len(fake.requests) == 1


def test_an_answer_slower_than_the_timeout_is_retryable(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    fake.reply(Reply(200, "too late", delay=5))

    started = time.monotonic()
    result = client.run(webhook_request(slack_task(fake), SLACK_INPUTS))

    assert time.monotonic() - started < 4
    assert result.phase is Phase.RETRYABLE_FAILED
    assert result.message == f"POST {fake.url}/hooks/alerts: no answer within 1 s"


def test_a_missing_input_fails_and_sends_nothing(client: AgentTestClient, fake: FakeHttpServer) -> None:
    task = slack_task(fake, inputs={"channel": str, "run": str})

    result = client.run(webhook_request(task, {"channel": "alerts", "run": "r42"}))

    assert result.phase is Phase.FAILED
    assert result.message == (
        "custom.data.text: the template uses {inputs.rows}, but the task has no input 'rows' "
        "(its inputs: channel, run)"
    )
    assert fake.requests == []


def test_a_secret_the_manifest_lacks_fails(client: AgentTestClient, fake: FakeHttpServer) -> None:
    task = slack_task(fake, headers={"Authorization": "Bearer {secret:github_token}"})

    result = client.run(webhook_request(task, SLACK_INPUTS))

    assert result.phase is Phase.FAILED
    assert result.message.startswith(
        "custom.headers.Authorization: the template asks for {secret:github_token}: "
        "agent 'webhook' has no secret 'github_token' in agents.toml"
    )
    assert fake.requests == []


def test_a_host_outside_allowed_hosts_fails_and_sends_nothing(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    task = slack_task(fake, url=fake.url.replace("127.0.0.1", "localhost") + "/hooks/x")

    result = client.run(webhook_request(task, SLACK_INPUTS))

    assert result.phase is Phase.FAILED
    assert result.message == "custom.url: host 'localhost' is not in this agent's allowed_hosts"
    assert fake.requests == []


# The allowed_hosts bypass (issue 11) and its relatives. The fake endpoint on 127.0.0.1 plays the
# attacker's server: none of these may reach it, and none may answer with the secret.

ATTACKS = [
    # urlsplit reads hooks.slack.com; urllib3 read 127.0.0.1:<port> and sent the secret header there.
    "http://127.0.0.1:{port}\\@hooks.slack.com/steal",
    "http://127.0.0.1:{port}\\@slack.com/steal",
    "http://hooks.slack.com@127.0.0.1:{port}/steal",
    "http://x:{secret:slack_token}@127.0.0.1:{port}/steal",
    "http://[127.0.0.1]:{port}/steal",
    "http://[::ffff:127.0.0.1]:{port}/steal",
    "http://[::1]:{port}/steal",
    "http://2130706433:{port}/steal",
    "http://0x7f000001:{port}/steal",
    "http://0177.0.0.1:{port}/steal",
    "http://127.1:{port}/steal",
    "http://127.0.0.1:{port}/steal",
    "http://localhost:{port}/steal",  # a real DNS name resolving to 127.0.0.1
    "http://localhost.:{port}/steal",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:{port}/st\teal",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("agent", ["slackhook", "anyhost"])
@pytest.mark.parametrize("url", ATTACKS)
def test_a_template_cannot_send_the_secret_elsewhere(
    client: AgentTestClient, fake: FakeHttpServer, agent: str, url: str
) -> None:
    port = str(urlsplit(fake.url).port)
    task = slack_task(fake, url=url.replace("{port}", port), task_type=f"webhook_{agent[:-4]}")

    result = client.run(webhook_request(task, SLACK_INPUTS))

    assert result.phase is Phase.FAILED, result.message
    assert result.message.startswith("custom.url: ")
    assert "\n" not in result.message
    assert fake.requests == []
    assert not shows(result, TOKEN)


def test_a_secret_in_the_host_is_not_named_in_the_refusal(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    task = slack_task(fake, url="http://t{secret:slack_token}.hooks.invalid/x", task_type="webhook_slack")

    result = client.run(webhook_request(task, SLACK_INPUTS))

    assert result.phase is Phase.FAILED
    assert result.message == (
        "custom.url: host 't{secret:slack_token}.hooks.invalid' is not in this agent's allowed_hosts"
    )


@pytest.mark.parametrize("location", ["{elsewhere}/collect", "http://localhost:{port}/collect", "/same-host"])
def test_a_redirect_is_not_followed(client: AgentTestClient, fake: FakeHttpServer, location: str) -> None:
    with FakeHttpServer() as elsewhere:
        port = str(urlsplit(elsewhere.url).port)
        target = location.replace("{elsewhere}", elsewhere.url).replace("{port}", port)
        fake.reply(Reply(302, "moved", headers={"Location": target}))

        result = client.run(webhook_request(slack_task(fake), SLACK_INPUTS))

        assert result.phase is Phase.FAILED
        assert result.message == f"POST {fake.url}/hooks/alerts answered HTTP 302, to {target}: moved"
        assert len(fake.requests) == 1
        assert elsewhere.requests == []
