"""The finalize Lambda against the recorded EventBridge event, and the driver's events of the same shape."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from serverless_agents.agent import Phase
from serverless_agents.runtime.sweeper import status_change_event
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional

RECORDED = json.loads(
    (Path(__file__).parents[1] / "events" / "sfn_execution_status_change_aborted.json").read_text()
)


def test_driver_events_have_the_recorded_shape(harness: Harness) -> None:
    task_id = harness.submit(harness.request(custom={"polls": 1}))
    harness.wait(task_id)
    (summary,) = harness.executions("job", task_id)
    execution = harness.stack.client("stepfunctions").describe_execution(executionArn=summary["executionArn"])

    event = status_change_event(execution)

    assert event["detail-type"] == RECORDED["detail-type"]
    assert event["source"] == RECORDED["source"]
    assert set(event["detail"]) <= set(RECORDED["detail"])
    assert {"executionArn", "name", "status", "input"} <= set(event["detail"])


def test_recorded_abort_event_runs_delete_once(harness: Harness) -> None:
    task_id = harness.submit(harness.request("example_job_slow", custom={"polls": 1000}))
    harness.wait_for_phase(task_id, Phase.RUNNING)
    while "metadata" not in harness.item(task_id):
        time.sleep(0.05)
    event = json.loads(json.dumps(RECORDED))
    event["detail"]["name"] = task_id
    event["detail"]["input"] = json.dumps({"task_id": task_id, "agent": "slowjob"})
    finalize = f"{harness.stack.deployment}-finalize"
    lambdas = harness.stack.client("lambda")

    # Delivered twice, as EventBridge may: delete runs once.
    answers = [
        json.loads(lambdas.invoke(FunctionName=finalize, Payload=json.dumps(event))["Payload"].read())
        for _ in range(2)
    ]

    assert [a["deleted"]["deleted"] for a in answers] == [True, False]
    assert harness.job(task_id)["deletes"] == 1
    assert Phase(harness.api.get_task(task_id).resource.phase) is Phase.ABORTED
    harness.api.delete_task(task_id)  # the execution is still running: stop it; its own event changes nothing
    harness.wait_execution("slowjob", task_id)
    assert harness.job(task_id)["deletes"] == 1
