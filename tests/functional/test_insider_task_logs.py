"""Insider: GetTaskLogs and GetTaskMetrics answer a task's own caller, and no one else.

The boundaries: the adapter reads a task's logs or metrics only for a `resource_meta` it signed, under a
task type that agent serves (`ApiCalls.on_task`, as GetTask), in both protocols; and a task's lines are the
lines logged while working on it (its `task_id`), never another task's, even one whose lines name it.
On main these calls answered UNIMPLEMENTED: the owner could read nothing, so each test below fails there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.flyte.resource_meta import encode_resource_meta, task_id_from_resource_meta
from serverless_agents.local.demo import FlyteClient
from tests.functional.conftest import Harness
from tests.functional.task_logs import (
    CHATTY,
    chatty_stack,
    flyte1_logs,
    flyte_client,
    run,
    texts,
    wait_for_lines,
)

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from chatty_stack(tmp_path_factory, "sa-logs-insider")


@pytest.fixture(scope="module")
def flyte(adapter: Adapter) -> Iterator[FlyteClient]:
    yield from flyte_client(adapter)


def reads(flyte: FlyteClient, executor: Any, meta: bytes, task_type: str) -> dict[str, Any]:
    """Every call that reads a task's logs or metrics, with `meta`, in both protocols."""
    category1 = agent_pb2.TaskCategory(name=task_type)
    category2 = connector_pb2.TaskCategory(name=task_type)
    return {
        "flyte1 logs": lambda: list(
            flyte.tasks.GetTaskLogs(
                agent_pb2.GetTaskLogsRequest(resource_meta=meta, task_category=category1), timeout=10
            )
        ),
        "flyte1 metrics": lambda: flyte.tasks.GetTaskMetrics(
            agent_pb2.GetTaskMetricsRequest(resource_meta=meta, task_category=category1), timeout=10
        ),
        "flyte2 logs": lambda: list(
            executor.tasks.GetTaskLogs(
                connector_pb2.GetTaskLogsRequest(resource_meta=meta, task_category=category2), timeout=10
            )
        ),
        "flyte2 metrics": lambda: executor.tasks.GetTaskMetrics(
            connector_pb2.GetTaskMetricsRequest(resource_meta=meta, task_category=category2), timeout=10
        ),
    }


def test_only_the_signed_resource_meta_of_the_tasks_agent_reads_its_logs_and_metrics(
    flyte: FlyteClient, executor: Any, adapter: Adapter
) -> None:
    victim = run(flyte, "victim")
    victim_id = task_id_from_resource_meta(victim)
    own = run(flyte, "attacker")
    forged = encode_resource_meta(victim_id, "chatty")  # the victim's id, computable; not signed
    # The attacker's own signed meta, its task id swapped for the victim's: the signature no longer matches.
    swapped = json.dumps({**json.loads(own), "task_id": victim_id}).encode()
    other_agents = adapter.keys.sign(encode_resource_meta("sa-logs-insider-job-x", "job"))

    # The owner reads its lines and figures in both protocols...
    assert wait_for_lines(flyte, victim, 3)
    for name, call in reads(flyte, executor, victim, CHATTY).items():
        assert call(), name
    # ...an unsigned one naming the victim, or another agent's under the victim's task type, reads nothing.
    for meta in (forged, swapped, other_agents):
        for name, call in reads(flyte, executor, meta, CHATTY).items():
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (name, meta)
            assert refused.value.details().startswith("resource_meta"), (name, refused.value.details())


def test_a_task_whose_lines_name_another_task_does_not_reach_its_logs(flyte: FlyteClient) -> None:
    victim = run(flyte, "quiet")
    victim_id = task_id_from_resource_meta(victim)
    # Its lines say the victim's task id (its tag), as a log line may name anything.
    noisy = run(flyte, victim_id)

    victim_lines = texts(wait_for_lines(flyte, victim, 3))
    noisy_lines = texts(wait_for_lines(flyte, noisy, 3))

    assert all("quiet" in line for line in victim_lines), victim_lines
    assert not [line for line in victim_lines if victim_id in line]
    assert all(victim_id in line for line in noisy_lines), noisy_lines
    assert texts(flyte1_logs(flyte, victim, lines=1000)) == victim_lines
