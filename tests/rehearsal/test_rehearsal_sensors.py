"""A sensor's life through the deployed resources: flytekit's FileSensor, created through the deployed API
(the api function registers it: a tasks-table item, a schedule in the sensor's deployed schedule group
targeting its poke function, and one asynchronous poke), then poked the two ways AWS pokes it.

- An S3 "Object Created" event (AWS's recorded example, tests/events/s3_object_created.json, with the
  object put here): moto's EventBridge matches events against the deployed rules, but its rules cannot
  invoke Lambda, so `EventBridge.deliver` matches the event against each deployed rule's EventPattern with
  moto's own matcher and invokes the target the rule names, if the function's deployed resource policy
  lets that rule invoke it. The watched bucket is the user's: the rehearsal creates it, and its own
  notification setting (EventBridge on) is the user's to turn on, so the event is built, not emitted.
- The task's schedule: moto's EventBridge Scheduler keeps schedules but never fires one, so the test reads
  the schedule the api created back from moto (target ARN, role, input) and invokes the target with the
  input, as Scheduler would; the role is checked to be the deployed scheduler role, trusted by Scheduler
  for this group and allowed to invoke that target (moto assumes no role and checks no policy).

Every ending removes the task's schedule (checked in moto's Scheduler), and its `watch` key, so a later
event for the same object pokes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from serverless_agents.agent import Phase
from serverless_agents.deployment.naming import sensor_schedule_name
from tests.rehearsal.conftest import SENSOR, WATCHED_BUCKET, Deployed
from tests.rehearsal.deployment import ACCOUNT
from tests.rehearsal.iam_audit import Call, allowed, policy_statements
from tests.rehearsal.lifecycle import create_file_sensor, get, item, object_created

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def group(deployed: Deployed) -> str:
    """The sensor's schedule group, as deployed."""
    (name,) = deployed.stack.physical("AWS::Scheduler::ScheduleGroup")
    return name


def poke_function(deployed: Deployed) -> dict[str, Any]:
    (logical,) = [
        logical
        for logical, resource in deployed.synth.resources("AWS::Lambda::Function").items()
        if resource["Properties"]["Environment"]["Variables"].get("SA_AGENT") == SENSOR
    ]
    return deployed.function(deployed.stack.resources[logical][1])


def test_an_object_created_event_ends_the_waiting_sensor_through_the_deployed_rule(
    deployed: Deployed, group: str
) -> None:
    path = f"s3://{WATCHED_BUCKET}/incoming/a.csv"
    task_id = create_file_sensor(deployed, path, "sensor-event")
    assert Phase(get(deployed, task_id).phase) is Phase.RUNNING  # the registration's poke found nothing
    assert sensor_schedule_name(task_id) in deployed.scheduler.schedules(group)
    poke = poke_function(deployed)["FunctionName"]
    invocations = deployed.lambdas.invocations[poke]

    answers = deployed.events.deliver(object_created(deployed, WATCHED_BUCKET, "incoming/a.csv"))

    # One rule matched (the sensor's), and its target is the poke function: it poked the one task.
    assert answers == [{"poked": 1, "phases": {task_id: "SUCCEEDED"}}]
    assert deployed.lambdas.invocations[poke] == invocations + 1
    resource = get(deployed, task_id)
    assert Phase(resource.phase) is Phase.SUCCEEDED
    assert resource.message == "the condition is met"
    assert sensor_schedule_name(task_id) not in deployed.scheduler.schedules(group)  # the ending removed it


def test_an_event_of_another_bucket_matches_no_deployed_rule(deployed: Deployed) -> None:
    other = "amzn-s3-demo-bucket2"
    deployed.client("s3").create_bucket(Bucket=other)

    assert deployed.events.deliver(object_created(deployed, other, "incoming/a.csv")) == []


def test_the_tasks_schedule_pokes_it_as_scheduler_would_until_it_ends(deployed: Deployed, group: str) -> None:
    task_id = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/scheduled/b.csv", "sensor-schedule")
    schedule = deployed.scheduler.schedules(group)[sensor_schedule_name(task_id)]

    assert schedule["ScheduleExpression"] == "rate(1 minute)"  # the manifest's
    target = schedule["Target"]
    assert target["Arn"] == poke_function(deployed)["FunctionArn"]
    assert json.loads(target["Input"]) == {"task_ids": [task_id]}
    # The object is not there: the poke records the wait.
    assert deployed.scheduler.fire(group, schedule["Name"]).result() == {
        "poked": 1,
        "phases": {task_id: "RUNNING"},
    }
    # The object arrives and its event is lost (or the bucket sends none): the next period finds it.
    deployed.client("s3").put_object(Bucket=WATCHED_BUCKET, Key="scheduled/b.csv", Body=b"rows\n")
    assert deployed.scheduler.fire(group, schedule["Name"]).result() == {
        "poked": 1,
        "phases": {task_id: "SUCCEEDED"},
    }

    assert Phase(get(deployed, task_id).phase) is Phase.SUCCEEDED
    assert item(deployed, task_id)["pokes"]["N"] == "3"  # registration, two periods
    assert schedule["Name"] not in deployed.scheduler.schedules(group)


def test_schedules_run_as_the_deployed_scheduler_role_which_may_invoke_their_target(
    deployed: Deployed, group: str
) -> None:
    task_id = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/role/c.csv", "sensor-role")
    target = deployed.scheduler.schedules(group)[sensor_schedule_name(task_id)]["Target"]
    (logical,) = [
        logical
        for logical, role in deployed.synth.resources("AWS::IAM::Role").items()
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "scheduler.amazonaws.com"}
    ]
    iam = deployed.client("iam")
    role = iam.get_role(RoleName=deployed.stack.resources[logical][1])["Role"]

    assert target["RoleArn"] == role["Arn"]
    assert allowed(
        policy_statements(iam, role["RoleName"]), Call("scheduler", "lambda:InvokeFunction", target["Arn"])
    )
    # Scheduler may assume it for this account's schedules in this group only (the confused deputy).
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    group_arn = deployed.client("scheduler").get_schedule_group(Name=group)["Arn"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": [group_arn]},
    }
    assert deployed.api.request("DELETE", f"/v1/tasks/{task_id}").status == 200


def test_delete_aborts_a_waiting_sensor_removes_its_schedule_and_its_watch(
    deployed: Deployed, group: str
) -> None:
    task_id = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/aborted/d.csv", "sensor-abort")

    # propeller's Abort -> DeleteTask -> DELETE /v1/tasks/{id}: no sensor code runs.
    answer = deployed.api.request("DELETE", f"/v1/tasks/{task_id}")

    assert answer.status == 200, answer
    resource = get(deployed, task_id)
    assert Phase(resource.phase) is Phase.ABORTED
    assert sensor_schedule_name(task_id) not in deployed.scheduler.schedules(group)
    # The object arrives too late: its event finds no task watching it.
    event = object_created(deployed, WATCHED_BUCKET, "aborted/d.csv")
    assert deployed.events.deliver(event) == [{"poked": 0, "phases": {}}]
    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED
