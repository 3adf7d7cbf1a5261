"""The ChatGPT agent through the local stack (driven with the public `AgentTestClient`), against a fake
OpenAI API on 127.0.0.1.

The task template is flytekitplugins-openai's `ChatGPTTask`, serialized by flytekit as `pyflyte register`
would; the agent uses the real `openai` client, so the fake sees OpenAI's own wire protocol.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.tools.translator import get_serializable
from flytekitplugins.openai import ChatGPTTask

from serverless_agents.agent import Phase
from serverless_agents.testing import AgentTestClient
from tests.functional.fake_http import FakeHttpServer, Reply

pytestmark = pytest.mark.functional

SECRET_ID = "sa-test-openai-key"
API_KEY = "sk-test-0123456789"
MANIFEST = """
[deployment]
name = "sa-openai"

[agents.chatgpt]
class = "serverless_agents.agents.openai_chat:ChatGPTAgent"
config = {{ base_url = "{base_url}/v1", timeout = 1 }}

[agents.chatgpt.secrets.api_key]
id = "{secret_id}"
destinations = [{{ host = "127.0.0.1", path = "/v1/", in = ["header"] }}]
"""
_tasks = itertools.count()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


@pytest.fixture(scope="module")
def client(fake: FakeHttpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest: Path = tmp_path_factory.mktemp("openai") / "agents.toml"
    manifest.write_text(MANIFEST.format(base_url=fake.url, secret_id=SECRET_ID))
    with AgentTestClient(manifest, secrets={"api_key": API_KEY}) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeHttpServer) -> None:
    fake.reset()


def chat_request(message: str = "Say hi to Flyte") -> agent_pb2.CreateTaskRequest:
    """What propeller sends for a ChatGPTTask: flytekit's template, flytekit's literals."""
    task = ChatGPTTask(
        name=f"tests.chat{next(_tasks)}",
        openai_organization="org-test",
        chatgpt_config={"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 64},
    )
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    template = get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()
    ctx = FlyteContextManager.current_context()
    inputs = TypeEngine.dict_to_literal_map(ctx, {"message": message}, {"message": str})
    execution = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id="n0",
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="demo", domain="development", name=f"chat{next(_tasks)}"
            ),
        ),
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=inputs.to_flyte_idl(),
        output_prefix="s3://demo/outputs",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution),
    )


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }


def openai_error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def test_chat_completion_answers_o0(client: AgentTestClient, fake: FakeHttpServer) -> None:
    fake.reply(Reply(200, completion("Hi, Flyte!")))
    request = chat_request("Say hi to Flyte")

    result = client.run(request)

    assert result.phase is Phase.SUCCEEDED, result.message
    outputs = TypeEngine.literal_map_to_kwargs(
        FlyteContextManager.current_context(), LiteralMap.from_flyte_idl(result.literals), {"o0": str}
    )
    assert outputs == {"o0": "Hi, Flyte!"}
    assert result.custom_info["usage"]["total_tokens"] == 16
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["openai-organization"] == "org-test"
    body = sent.json()
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "user", "content": "Say hi to Flyte"}]
    assert body["temperature"] == 0.2
    # The template's Struct made it 64.0; OpenAI is given an integer.
    assert body["max_tokens"] == 64
    assert type(body["max_tokens"]) is int


def test_a_rejected_key_fails_naming_the_secret(client: AgentTestClient, fake: FakeHttpServer) -> None:
    fake.reply(
        Reply(401, openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
    )

    result = client.run(chat_request())

    assert result.phase is Phase.FAILED
    assert "HTTP 401" in result.message
    assert "api_key" in result.message
    assert SECRET_ID in result.message
    assert "Incorrect API key provided." in result.message
    assert API_KEY not in f"{result!r} {result.literals}"


def test_a_rejected_keys_fragment_quoted_by_openai_is_masked(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    # As OpenAI words it: the key's first and last characters, stars between.
    quoted = f"Incorrect API key provided: {API_KEY[:8]}****{API_KEY[-4:]}. You can find your API key at ..."
    fake.reply(Reply(401, openai_error(quoted, "invalid_request_error", "invalid_api_key")))

    result = client.run(chat_request())

    assert result.phase is Phase.FAILED
    assert "Incorrect API key provided: sk-***. You can find" in result.message
    assert API_KEY[-4:] not in result.message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai_error("Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded")),
        (500, openai_error("The server had an error while processing your request.", "server_error")),
        (503, openai_error("The engine is currently overloaded.", "server_error")),
    ],
)
def test_throttling_and_server_errors_are_retryable(
    client: AgentTestClient, fake: FakeHttpServer, status: int, error: dict[str, Any]
) -> None:
    fake.reply(Reply(status, error))

    result = client.run(chat_request())

    assert result.phase is Phase.RETRYABLE_FAILED
    assert f"HTTP {status}" in result.message
    assert error["error"]["message"] in result.message
    # The client's own retries are off: Flyte's retries are the ones that count, within its deadline.
    assert len(fake.requests) == 1


def test_a_bad_request_fails_with_openai_message(client: AgentTestClient, fake: FakeHttpServer) -> None:
    fake.reply(Reply(404, openai_error("The model `gpt-nope` does not exist.", "invalid_request_error")))

    result = client.run(chat_request())

    assert result.phase is Phase.FAILED
    assert result.message == "OpenAI refused the request (HTTP 404): The model `gpt-nope` does not exist."


def test_an_answer_slower_than_the_timeout_is_retryable(
    client: AgentTestClient, fake: FakeHttpServer
) -> None:
    fake.reply(Reply(200, completion("too late"), delay=5))

    started = time.monotonic()
    result = client.run(chat_request())

    assert time.monotonic() - started < 4
    assert result.phase is Phase.RETRYABLE_FAILED
    assert "did not answer within 1 s" in result.message
