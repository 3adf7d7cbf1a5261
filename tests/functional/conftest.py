"""Functional fixtures: one embedded stack per test module, running the real ASL on moto through the
real handlers, reached over real HTTP."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.api.client import ApiClient
from serverless_agents.examples import JobAgent
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.local.stack import LocalStack
from serverless_agents.testing import task_request, wait_for_task

if TYPE_CHECKING:
    from tests.functional.flyte2_tasks import Executor

MANIFEST = """
[deployment]
name = "sa-test"

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }

[agents.slowjob]
class = "tests.functional.agents:SlowJobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }

[agents.shortjob]
class = "tests.functional.agents:ShortTimeoutJobAgent"
execution_timeout = 2
poll = { initial = 1, factor = 1.0, cap = 1 }

[agents.echo]
class = "serverless_agents.examples:EchoAgent"
"""

_runs = itertools.count()


class Harness:
    """The stack plus what the tests ask of it: submit, wait, and look inside the emulated AWS."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.api = ApiClient(stack.api_url)

    def request(self, task_type: str = "example_job", **kwargs: Any) -> agent_pb2.CreateTaskRequest:
        kwargs.setdefault("inputs", {"n": 1})
        kwargs.setdefault("outputs", {"n": int, "polls": int})
        kwargs.setdefault("execution", f"run{next(_runs)}")
        return task_request(task_type, **kwargs)

    def submit(self, request: agent_pb2.CreateTaskRequest) -> str:
        return task_id_from_resource_meta(self.api.create_task(request).resource_meta)

    def wait(self, task_id: str, timeout: float = 30) -> agent_pb2.Resource:
        return wait_for_task(self.api, task_id, timeout=timeout)

    def wait_for_phase(self, task_id: str, phase: Phase, timeout: float = 30) -> agent_pb2.Resource:
        return wait_for_task(self.api, task_id, until=lambda current: current is phase, timeout=timeout)

    def item(self, task_id: str) -> dict[str, Any]:
        return (
            self.stack.client("dynamodb")
            .get_item(TableName=self.stack.tasks_table, Key={"id": {"S": task_id}})
            .get("Item", {})
        )

    def job(self, task_id: str) -> dict[str, Any]:
        """The example platform's record of the task's job: how often get and delete ran."""
        metadata = json.loads(self.item(task_id)["metadata"]["S"])
        body = self.stack.client("s3").get_object(
            Bucket=metadata["bucket"], Key=JobAgent.job_key(metadata["job_id"])
        )
        return dict(json.loads(body["Body"].read()))

    def job_count(self) -> int:
        listing = self.stack.client("s3").list_objects_v2(Bucket=self.stack.payload_bucket, Prefix="state/")
        return int(listing.get("KeyCount", 0))

    def executions(self, agent: str, task_id: str | None = None) -> list[dict[str, Any]]:
        sfn = self.stack.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=self.stack.state_machine_arns[agent])["executions"]
        return [e for e in listed if task_id is None or e["name"] == task_id]

    def wait_execution(self, agent: str, task_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            (execution,) = self.executions(agent, task_id)
            if execution["status"] != "RUNNING":
                return execution
            assert time.monotonic() < deadline, f"execution {task_id} still running"
            time.sleep(0.1)

    def function(self, agent: str, role: str) -> str:
        return f"{self.stack.deployment}-{agent}-{role}"

    def table_size(self) -> int:
        return int(
            self.stack.client("dynamodb").scan(TableName=self.stack.tasks_table, Select="COUNT")["Count"]
        )


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


@pytest.fixture(scope="module")
def adapter(harness: Harness) -> Iterator[Adapter]:
    """The gRPC adapter (Flyte 1's and Flyte 2's services) in front of the module's stack."""
    running = Adapter(harness.stack.api_url, host="127.0.0.1", port=0).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def executor(adapter: Adapter) -> Iterator[Executor]:
    """Flyte 2's executor, as its connector plugin calls the adapter (flyteidl2's stubs)."""
    from tests.functional.flyte2_tasks import Executor  # the flyte SDK: only for the modules that use it

    client = Executor(adapter.address)
    yield client
    client.channel.close()
