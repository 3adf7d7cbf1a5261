"""An async task's steps, as the rehearsal's tests take them through the deployment."""

from __future__ import annotations

import json
import time
from typing import Any

from flyteidl.admin import agent_pb2

from serverless_agents import wire
from serverless_agents.agent import Phase
from serverless_agents.client import task_id_from_resource_meta
from serverless_agents.testing import task_request
from tests.rehearsal.conftest import Deployed, load_event

WAIT_SECONDS = 60.0  # a bound on waiting, not a timing assertion: the lifecycles take a second or two


def create(deployed: Deployed, task_type: str, execution: str, custom: dict[str, Any]) -> str:
    # flytepropeller's CreateTask (flyteplugins/go/tasks/plugins/webapi/agent/plugin.go, Create), as the
    # adapter forwards it: POST /v1/tasks.
    request = task_request(
        task_type, inputs={"n": 3}, outputs={"n": 0, "polls": 0}, custom=custom, execution=execution
    )
    answer = deployed.api.request("POST", "/v1/tasks", wire.to_dict(request))
    assert answer.status == 201, answer
    created = wire.from_json(agent_pb2.CreateTaskResponse, answer.body)
    return task_id_from_resource_meta(created.resource_meta)


def get(deployed: Deployed, task_id: str) -> agent_pb2.Resource:
    answer = deployed.api.request("GET", f"/v1/tasks/{task_id}")
    assert answer.status == 200, answer
    return wire.from_json(agent_pb2.GetTaskResponse, answer.body).resource


def wait_for(deployed: Deployed, task_id: str, *phases: Phase) -> agent_pb2.Resource:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        resource = get(deployed, task_id)
        if Phase(resource.phase) in phases:
            return resource
        assert time.monotonic() < deadline, f"task {task_id} still {Phase(resource.phase).name}"
        time.sleep(0.1)


def execution(deployed: Deployed, agent: str, task_id: str) -> dict[str, Any]:
    """The task's execution of the agent's deployed state machine (its ARN from the stack's outputs)."""
    state_machine = deployed.stack.outputs[f"StateMachineArn{agent.title()}"]
    arn = state_machine.replace(":stateMachine:", ":execution:") + f":{task_id}"
    return dict(deployed.client("stepfunctions").describe_execution(executionArn=arn))


def wait_for_execution(deployed: Deployed, agent: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while (described := execution(deployed, agent, task_id))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution of {task_id} still running"
        time.sleep(0.1)
    return described


def job_record(deployed: Deployed, agent: str) -> dict[str, Any]:
    """The example job's own record (its gets and deletes; serverless_agents.examples.JobAgent), in the
    deployed payload bucket: the one job of `agent` (each test runs one task of its own agent)."""
    s3 = deployed.client("s3")
    bucket = deployed.stack.outputs["PayloadBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"state/{agent}/").get("Contents", [])]
    assert len(keys) == 1, keys
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()))


def status_change(described: dict[str, Any]) -> dict[str, Any]:
    """The event EventBridge delivers when the execution ends: AWS's recorded example
    (tests/events/sfn_execution_status_change_aborted.json) with this execution's fields."""
    event = load_event("sfn_execution_status_change_aborted.json")
    event["resources"] = [described["executionArn"]]
    event["detail"] |= {
        "executionArn": described["executionArn"],
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "status": described["status"],
        "input": described["input"],
        "error": described.get("error"),
        "cause": described.get("cause"),
    }
    return event
