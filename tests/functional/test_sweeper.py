"""The sweeper finalizes executions whose status-change event never arrived."""

from __future__ import annotations

import json

import pytest

from serverless_agents.agent import Phase
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional


def test_sweeper_cleans_up_an_abort_whose_event_was_lost(harness: Harness) -> None:
    assert harness.stack.driver is not None
    harness.stack.driver.stop()  # from here on, no status-change event reaches finalize
    task_id = harness.submit(harness.request("example_job_slow", custom={"polls": 1000}))
    harness.wait_for_phase(task_id, Phase.RUNNING)
    harness.api.delete_task(task_id)
    assert harness.wait_execution("slowjob", task_id)["status"] == "ABORTED"
    assert Phase(harness.api.get_task(task_id).resource.phase) is Phase.RUNNING  # nobody cleaned up
    assert harness.job(task_id)["deletes"] == 0
    sweeper = f"{harness.stack.deployment}-sweeper"
    lambdas = harness.stack.client("lambda")

    first = json.loads(lambdas.invoke(FunctionName=sweeper, Payload=b"{}")["Payload"].read())
    second = json.loads(lambdas.invoke(FunctionName=sweeper, Payload=b"{}")["Payload"].read())

    assert first["deleted"] == 1
    assert second == {"seen": first["seen"], "deleted": 0, "ended": 0}  # it may run any number of times
    assert harness.job(task_id)["deletes"] == 1
    resource = harness.api.get_task(task_id).resource
    assert Phase(resource.phase) is Phase.ABORTED
