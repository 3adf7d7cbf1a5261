"""Events end the wait (#21 item 2) through the deployed template: the agent `signalled` (a minute between
polls) declares its platform's events; a task's job ends, its event goes through the deployed rule to the
rule's target (the agent's get function), which ends the task's Listen wait with its task token: the task
ends SUCCEEDED long before its next poll. Every call the agent's functions made is allowed by their
deployed policies."""

from __future__ import annotations

import json
import time

import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.agent import Phase
from serverless_agents.flyte import wire
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.testing import task_request
from tests.functional.agents import JOBS
from tests.rehearsal.conftest import Deployed
from tests.rehearsal.iam_audit import allowed, role_statements
from tests.rehearsal.lifecycle import item, wait_for

pytestmark = pytest.mark.functional

#: Well under the agent's minute between polls.
SOON = 20


def test_a_jobs_event_through_the_deployed_rule_ends_its_tasks_wait(deployed: Deployed) -> None:
    request = task_request("gated_job", inputs={"n": 1}, outputs={}, execution="signalled-1")
    answer = deployed.api.request("POST", "/v1/tasks", wire.to_dict(request))
    assert answer.status == 201, answer
    created = wire.from_json(agent_pb2.CreateTaskResponse, answer.body)
    task_id = task_id_from_resource_meta(created.resource_meta)
    deadline = time.monotonic() + SOON
    while "wake_token" not in item(deployed, task_id):  # the Listen wait has parked its token
        assert time.monotonic() < deadline, f"task {task_id} never waited for its token"
        time.sleep(0.1)
    job_id = json.loads(item(deployed, task_id)["metadata"]["S"])["job_id"]
    JOBS[job_id].done = True

    event = {
        "version": "0",
        "id": "0d6b0c4e-7a3c-4b7e-9c1e-1f2a3b4c5d6e",
        "detail-type": "Job State Change",
        "source": "rehearsal.jobs",
        "account": "123456789012",
        "time": "2026-12-07T05:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"job": job_id},
    }
    assert deployed.events.deliver(event) == [{"woken": 1}]
    resource = wait_for(deployed, task_id, Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert JOBS[job_id].gets == 1  # the event's get, not a poll's


def test_every_call_of_the_listening_agents_functions_is_allowed_by_their_deployed_policies(
    deployed: Deployed,
) -> None:
    calls = [c for c in deployed.calls.calls if c.function.startswith("rehearsal-signalled-")]
    assert any(c.action == "states:SendTaskSuccess" for c in calls)
    assert any(c.action == "dynamodb:Query" for c in calls)
    iam, lambdas = deployed.client("iam"), deployed.client("lambda")
    statements = {f: role_statements(iam, lambdas, f) for f in {c.function for c in calls}}

    assert [c for c in calls if not allowed(statements[c.function], c)] == []
