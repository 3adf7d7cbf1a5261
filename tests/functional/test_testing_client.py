"""`serverless_agents.testing.AgentTestClient`: what an agent author's tests call, on every kind of agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_agents.agent import Phase
from serverless_agents.testing import AgentTestClient

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-client"

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }

[agents.echo]
class = "serverless_agents.examples:EchoAgent"

[agents.moody]
class = "tests.functional.agents:MoodySensor"

[[agents.moody.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = { bucket = { name = ["moods"] } }
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest) as running:
        yield running


def test_run_drives_an_async_task_to_its_outputs(client: AgentTestClient) -> None:
    result = client.run("example_job", inputs={"n": 3}, outputs={"n": int, "polls": int}, custom={"polls": 2})

    assert (result.phase, result.message, result.outputs) == (Phase.SUCCEEDED, "done", {"n": 3, "polls": 2})
    assert "Step Functions execution" in result.log_links
    assert result.task_id


def test_run_answers_a_sync_task_at_once(client: AgentTestClient) -> None:
    result = client.run("example_echo", inputs={"text": "ping"}, outputs={"text": str})

    assert (result.phase, result.outputs) == (Phase.SUCCEEDED, {"text": "ping"})


def test_an_upload_fires_a_waiting_sensor(client: AgentTestClient) -> None:
    task_id = client.start("moody_sensor", inputs={"bucket": "moods", "key": "today"})
    client.upload("s3://moods/today", b"yes")

    assert client.wait(task_id).phase is Phase.SUCCEEDED


def test_cancel_aborts_a_running_task(client: AgentTestClient) -> None:
    task_id = client.start("example_job", inputs={"n": 1}, outputs={"n": int}, custom={"polls": 10_000})
    client.cancel(task_id)

    assert client.wait(task_id).phase is Phase.ABORTED
