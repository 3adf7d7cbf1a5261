"""A sync agent through the local API Gateway and its own Lambda, driven with the public test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_agents.agent import Phase
from serverless_agents.exceptions import AgentNotFound, InvalidRequest
from serverless_agents.testing import AgentTestClient, task_request

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-sync"

[agents.job]
class = "serverless_agents.examples:JobAgent"

[agents.echo]
class = "serverless_agents.examples:EchoAgent"
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest: Path = tmp_path_factory.mktemp("sync") / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest) as running:
        yield running


def test_sync_agent_answers_with_outputs(client: AgentTestClient) -> None:
    result = client.run("example_echo", inputs={"text": "ping", "n": 2}, outputs={"text": str, "n": int})

    assert result.phase is Phase.SUCCEEDED
    assert result.outputs == {"text": "ping", "n": 2}


def test_sync_agent_whose_outputs_miss_the_interface_fails_the_task(client: AgentTestClient) -> None:
    result = client.run("example_echo", inputs={"text": "ping"}, outputs={})

    assert result.phase is Phase.FAILED
    assert "outputs.text" in result.message


def test_sync_agent_refuses_a_task_type_it_does_not_serve(client: AgentTestClient) -> None:
    with pytest.raises(InvalidRequest, match=r"serves 'example_echo'"):
        client.api.execute_sync("echo", task_request("example_job", {"n": 1}, {"n": int}))


def test_unknown_sync_agent_is_not_found(client: AgentTestClient) -> None:
    with pytest.raises(AgentNotFound):
        client.api.execute_sync("nope", task_request("example_echo", {"text": "ping"}))


def test_sync_task_type_on_the_async_route_says_where_to_go(client: AgentTestClient) -> None:
    with pytest.raises(InvalidRequest, match="/v1/sync/echo"):
        client.start("example_echo", inputs={"text": "ping"})
