"""GetTaskLogs and GetTaskMetrics end to end, both protocols: flyteidl's stubs as flytekit's connector service
answers them (flytekit/extend/backend/connector_service.py, `GetTaskLogs` / `GetTaskMetrics`) and flyteidl2's
as flyte-sdk's connector server streams them (flyte/connectors/_server.py: body / header pages, the header's
token for the next call), against the adapter in front of the local stack, whose functions' log records go
to moto's CloudWatch Logs as Lambda sends them (serverless_agents.local.log_capture)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.logs.dataplane import payload_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.api.client import ApiClient
from serverless_agents.aws.prices import estimated_cost
from serverless_agents.exceptions import InvalidRequest, TaskNotFound
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
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
    yield from chatty_stack(tmp_path_factory, "sa-logs")


@pytest.fixture(scope="module")
def flyte(adapter: Adapter) -> Iterator[FlyteClient]:
    yield from flyte_client(adapter)


@pytest.fixture(scope="module")
def alpha(flyte: FlyteClient) -> bytes:
    return run(flyte, "alpha")


@pytest.fixture(scope="module")
def beta(flyte: FlyteClient) -> bytes:
    return run(flyte, "beta", polls=3)


def test_flyte1_logs_are_the_tasks_own_lines_then_a_header(
    flyte: FlyteClient, alpha: bytes, beta: bytes
) -> None:
    responses = wait_for_lines(flyte, alpha, 3)
    wait_for_lines(flyte, beta, 4)

    lines = texts(responses)
    assert lines == [
        "INFO created job for alpha",
        "INFO polled job for alpha: poll 1 of 2",
        "INFO polled job for alpha: done",
    ]
    assert [r.WhichOneof("part") for r in responses] == ["body", "header"]
    assert responses[-1].header.token == ""  # every line read
    (body,) = [r.body for r in responses if r.HasField("body")]
    assert [line.message for line in body.structured_lines] == lines
    assert {line.originator for line in body.structured_lines} == {agent_pb2.SYSTEM}
    stamps = [line.timestamp.ToMilliseconds() for line in body.structured_lines]
    assert stamps == sorted(stamps)
    assert stamps[0] > 0
    assert texts(flyte1_logs(flyte, beta)) == [
        "INFO created job for beta",
        *(f"INFO polled job for beta: poll {n} of 3" for n in (1, 2)),
        "INFO polled job for beta: done",
    ]


def test_logs_page_by_lines_and_token(flyte: FlyteClient, beta: bytes) -> None:
    whole = texts(wait_for_lines(flyte, beta, 4))
    pages: list[list[str]] = []
    token = ""
    while True:
        responses = flyte1_logs(flyte, beta, lines=1, token=token)
        pages.append(texts(responses))
        token = responses[-1].header.token
        if not token:
            break
        assert len(pages) < 10

    assert [line for page in pages for line in page] == whole
    assert all(len(page) <= 1 for page in pages)
    assert len(pages) >= len(whole)


def test_flyte2_logs_are_structured_log_lines(executor: Any, alpha: bytes, flyte: FlyteClient) -> None:
    wait_for_lines(flyte, alpha, 3)
    request = connector_pb2.GetTaskLogsRequest(
        resource_meta=alpha, task_category=connector_pb2.TaskCategory(name=CHATTY)
    )

    responses = list(executor.tasks.GetTaskLogs(request, timeout=10))

    assert [r.WhichOneof("part") for r in responses] == ["body", "header"]
    lines = responses[0].body.lines
    assert [line.message for line in lines] == [
        "INFO created job for alpha",
        "INFO polled job for alpha: poll 1 of 2",
        "INFO polled job for alpha: done",
    ]
    assert {line.originator for line in lines} == {payload_pb2.SYSTEM}
    assert all(line.timestamp.seconds > 0 for line in lines)
    assert list(responses[0].body.results) == [line.message for line in lines]


def figures(results: Any) -> dict[str, float]:
    """Each metric's one sample, from the Prometheus matrix `ExecutionMetricResult.data` carries."""
    found = {}
    for result in results:
        (series,) = result.data["result"]
        ((_, value),) = series["values"]
        assert series["metric"]["partial"] == "false"
        found[result.metric] = float(value)
    return found


def test_metrics_agree_with_the_execution(
    flyte: FlyteClient, executor: Any, harness: Harness, beta: bytes
) -> None:
    task_id = task_id_from_resource_meta(beta)
    flyte1 = flyte.tasks.GetTaskMetrics(
        agent_pb2.GetTaskMetricsRequest(
            resource_meta=beta, task_category=agent_pb2.TaskCategory(name=CHATTY)
        ),
        timeout=10,
    )
    flyte2 = executor.tasks.GetTaskMetrics(
        connector_pb2.GetTaskMetricsRequest(
            resource_meta=beta, task_category=connector_pb2.TaskCategory(name=CHATTY)
        ),
        timeout=10,
    )
    custom_info = flyte.get(beta, CHATTY).custom_info
    measured = figures(flyte1.results)

    assert figures(flyte2.results) == measured
    assert [r.metric for r in flyte1.results] == [
        "duration_seconds",
        "polls",
        "state_transitions",
        "lambda_invocations",
        "lambda_gb_seconds",
        "estimated_cost_usd",
    ]
    gets = harness.job(task_id)["gets"]
    assert measured["polls"] == gets == custom_info["polls"] == 3
    assert measured["state_transitions"] == custom_info["state_transitions"] == 3 + 3 * 3
    assert measured["lambda_invocations"] == 1 + gets  # its create, its gets; no delete: the job ended
    assert measured["lambda_gb_seconds"] > 0
    assert measured["estimated_cost_usd"] == pytest.approx(
        estimated_cost(12, measured["lambda_gb_seconds"], 1 + gets)
    )
    assert measured["duration_seconds"] >= 0


def test_metrics_count_every_execution_of_a_chain(flyte: FlyteClient, harness: Harness) -> None:
    chained = run(flyte, "gamma", polls=3, task_type="example_job_chatty_chain")  # 2 polls an execution
    task_id = task_id_from_resource_meta(chained)
    category = agent_pb2.TaskCategory(name="example_job_chatty_chain")

    measured = figures(
        flyte.tasks.GetTaskMetrics(
            agent_pb2.GetTaskMetricsRequest(resource_meta=chained, task_category=category), timeout=10
        ).results
    )

    assert len(json.loads(harness.item(task_id)["earlier_executions"]["S"])) == 1  # one continuation
    assert measured["polls"] == 3
    assert measured["state_transitions"] == 3 + 3 * 3 + 3 * 1
    assert measured["lambda_invocations"] == 1 + 3  # create and gets, in both executions
    assert (
        texts(wait_for_lines(flyte, chained, 4, "example_job_chatty_chain"))[-1]
        == "INFO polled job for gamma: done"
    )


def test_metrics_answer_the_queries_asked_and_refuse_unknown_ones(flyte: FlyteClient, alpha: bytes) -> None:
    category = agent_pb2.TaskCategory(name=CHATTY)
    asked = flyte.tasks.GetTaskMetrics(
        agent_pb2.GetTaskMetricsRequest(resource_meta=alpha, task_category=category, queries=["polls"]),
        timeout=10,
    )
    with pytest.raises(grpc.RpcError) as unknown:
        flyte.tasks.GetTaskMetrics(
            agent_pb2.GetTaskMetricsRequest(resource_meta=alpha, task_category=category, queries=["cpu"]),
            timeout=10,
        )

    assert figures(asked.results) == {"polls": 2.0}
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert unknown.value.details().startswith("queries[0]:")


def test_http_routes_validate_their_parameters(harness: Harness, alpha: bytes) -> None:
    api = ApiClient(harness.stack.api_url)
    task_id = task_id_from_resource_meta(alpha)

    with pytest.raises(InvalidRequest) as lines:
        api.get_task_logs(task_id, lines=0)
    with pytest.raises(InvalidRequest) as token:
        api.get_task_logs(task_id, token="x" * 5000)
    with pytest.raises(TaskNotFound):
        api.get_task_logs("sa-logs-chatty-no-such-task")
    with pytest.raises(TaskNotFound):
        api.get_task_metrics("sa-logs-chatty-no-such-task")

    assert lines.value.field == "lines"
    assert token.value.field == "token"
