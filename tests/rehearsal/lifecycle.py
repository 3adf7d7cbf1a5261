"""An async task's steps, as the rehearsal's tests take them through the deployment."""

from __future__ import annotations

import json
import time
from typing import Any

from flyteidl.admin import agent_pb2

from serverless_agents.agent import Phase
from serverless_agents.api.client import task_id_from_resource_meta
from serverless_agents.examples import JobAgent, JobMetadata
from serverless_agents.flyte import wire
from serverless_agents.testing import task_request
from tests.rehearsal.conftest import Deployed, load_event
from tests.rehearsal.deployment import ACCOUNT, REGION, Invocation

WAIT_SECONDS = 60.0  # a bound on waiting, not a timing assertion: the lifecycles take a second or two


def create(deployed: Deployed, task_type: str, execution: str, custom: dict[str, Any]) -> str:
    # flytepropeller's CreateTask (flyteplugins/go/tasks/plugins/webapi/agent/plugin.go, Create), as the
    # adapter forwards it: POST /v1/tasks.
    request = task_request(
        task_type, inputs={"n": 3}, outputs={"n": int, "polls": int}, custom=custom, execution=execution
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


def job_record(deployed: Deployed, task_id: str) -> dict[str, Any]:
    """The example job's own record (its gets and deletes; serverless_agents.examples.JobAgent), in the
    deployed payload bucket, where the task's resource metadata (in the tasks table) says."""
    metadata = JobMetadata.model_validate_json(item(deployed, task_id)["metadata"]["S"])
    s3 = deployed.client("s3")
    body = s3.get_object(Bucket=metadata.bucket, Key=JobAgent.job_key(metadata.job_id))["Body"]
    return dict(json.loads(body.read()))


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


def create_file_sensor(deployed: Deployed, path: str, execution: str, timeout: int | None = None) -> str:
    """flytekit's FileSensor task for `path`, created as propeller creates it (task type `sensor`, the
    sensor named in `custom`), through the deployed API; returns once the registration's poke ran.
    `timeout`: the task's own (its template's `metadata.timeout`), which bounds the wait."""
    from flytekit.sensor.file_sensor import FileSensor

    from tests.functional.flyte_tasks import create_request

    request = create_request(FileSensor(name=f"rehearsal.sensors.{execution}"), {"path": path}, execution)
    if timeout is not None:
        request.template.metadata.timeout.FromSeconds(timeout)
    answer = deployed.api.request("POST", "/v1/tasks", wire.to_dict(request))
    assert answer.status == 201, answer
    task_id = task_id_from_resource_meta(
        wire.from_json(agent_pb2.CreateTaskResponse, answer.body).resource_meta
    )
    # The api invokes the poke function asynchronously (InvocationType Event) once: wait for that poke.
    deadline = time.monotonic() + WAIT_SECONDS
    while int(item(deployed, task_id).get("pokes", {}).get("N", 0)) < 1:
        assert time.monotonic() < deadline, f"sensor task {task_id} never poked at registration"
        time.sleep(0.05)
    return task_id


def item(deployed: Deployed, task_id: str) -> dict[str, Any]:
    """The task's item in the deployed tasks table."""
    table = deployed.stack.outputs["TasksTableName"]
    got = deployed.client("dynamodb").get_item(TableName=table, Key={"id": {"S": task_id}})
    return dict(got["Item"])


def object_created(deployed: Deployed, bucket: str, key: str) -> dict[str, Any]:
    """The event EventBridge delivers when `bucket` (sending its events to EventBridge) stores `key`:
    AWS's recorded example (tests/events/s3_object_created.json) with this object's fields. The object
    itself is put first, as S3 emits the event after storing it."""
    body = b"rows\n"
    put = deployed.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    event = load_event("s3_object_created.json")
    event |= {"account": ACCOUNT, "region": REGION, "resources": [f"arn:aws:s3:::{bucket}"]}
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"] |= {"key": key, "size": len(body), "etag": put["ETag"].strip('"')}
    del event["detail"]["object"]["version-id"]  # present for a versioned bucket only
    event["detail"]["requester"] = ACCOUNT
    return event


def sweep(deployed: Deployed) -> Invocation:
    """One period of the deployed sweeper's scheduled rule (its name from the template)."""
    (invocation,) = deployed.events.fire(
        sweeper_rule(deployed), load_event("eventbridge_scheduled_event.json")
    )
    return invocation


def sweeper_rule(deployed: Deployed) -> str:
    """The one scheduled rule of the template targeting the sweeper function, as deployed."""
    sweeper = deployed.synth.function_id("rehearsal-sweeper")
    (logical,) = [
        logical
        for logical, rule in deployed.synth.resources("AWS::Events::Rule").items()
        if "ScheduleExpression" in rule["Properties"]
        and [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": [sweeper, "Arn"]}]
    ]
    return deployed.stack.resources[logical][1]


def abort_running(
    deployed: Deployed, agent: str, task_type: str, execution_name: str, custom: dict[str, Any]
) -> str:
    """A running task aborted (propeller's DeleteTask: StopExecution), its execution ABORTED; its
    status-change event is not delivered (the caller delivers it, or it is lost: the sweeper's to catch).

    The agent waits a second between polls, so the stop lands in the state machine's Wait: moto 5.2.5's
    Step Functions, stopped while a Lambda task is in flight, can fail the execution with States.Runtime
    ("'dict' object has no attribute 'region'") instead of aborting it."""
    task_id = create(deployed, task_type, execution_name, {"polls": 1000000, **custom})
    wait_for(deployed, task_id, Phase.RUNNING)
    answer = deployed.api.request("DELETE", f"/v1/tasks/{task_id}")
    assert answer.status == 200, answer
    assert wait_for_execution(deployed, agent, task_id)["status"] == "ABORTED"
    return task_id


def wait_past_bound(deployed: Deployed, task_id: str) -> None:
    """Until the task's bound (`end_by`: its cleanup began `end_within` seconds ago) has passed."""
    end_by = float(item(deployed, task_id)["end_by"]["N"])
    time.sleep(max(0.0, end_by - time.time()) + 0.05)
