"""The chatty job agent's stack and the calls the GetTaskLogs / GetTaskMetrics tests share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.flyte_tasks import ExampleTask, create_request

MANIFEST = """
[deployment]
name = "sa-logs"

[agents.chatty]
class = "tests.functional.agents:ChattyJobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }
memory = 512

[agents.chain]
class = "tests.functional.agents:ChattyChainAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }
polls_per_execution = 2

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }
"""
CHATTY = "example_job_chatty"
_runs = iter(range(10_000))


def chatty_task(tag: str, polls: int = 2, task_type: str = CHATTY) -> ExampleTask:
    return ExampleTask(
        f"flytesnacks.logs.{tag}", task_type, {"n": int}, {"n": int, "polls": int}, polls=polls, tag=tag
    )


def chatty_stack(tmp_path_factory: pytest.TempPathFactory, deployment: str) -> Iterator[Harness]:
    """A module's stack of the chatty agent (and the example job agent), deployed as `deployment`."""
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST.replace('"sa-logs"', f'"{deployment}"'))
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


def flyte_client(adapter: Adapter) -> Iterator[FlyteClient]:
    """Flyte 1's propeller, as the demo's client calls the adapter (flyteidl's stubs)."""
    client = FlyteClient(adapter.address)
    yield client
    client.channel.close()


def run(flyte: FlyteClient, tag: str, polls: int = 2, task_type: str = CHATTY) -> bytes:
    """A chatty task run to its end; its resource_meta."""
    request = create_request(chatty_task(tag, polls, task_type), {"n": 1}, f"logs-{next(_runs)}")
    meta = flyte.create(request)
    resource = flyte.wait(meta, task_type, lambda line: None, 30)
    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    return meta


def flyte1_logs(
    flyte: FlyteClient, meta: bytes, lines: int = 0, token: str = "", task_type: str = CHATTY
) -> list[Any]:
    request = agent_pb2.GetTaskLogsRequest(
        resource_meta=meta, task_category=agent_pb2.TaskCategory(name=task_type), lines=lines, token=token
    )
    return list(flyte.tasks.GetTaskLogs(request, timeout=10))


def texts(responses: list[Any]) -> list[str]:
    return [line for r in responses if r.HasField("body") for line in r.body.results]


def wait_for_lines(flyte: FlyteClient, meta: bytes, count: int, task_type: str = CHATTY) -> list[Any]:
    """The lines of a task that just ended: the last invocation's are written when it returns."""
    deadline = time.monotonic() + 10
    while len(texts(responses := flyte1_logs(flyte, meta, task_type=task_type))) < count:
        assert time.monotonic() < deadline, texts(responses)
        time.sleep(0.1)
    return responses
