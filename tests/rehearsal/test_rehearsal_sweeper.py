"""The deployed sweeper, run as its deployed rule runs it, catches what finalize never saw.

moto's EventBridge fires no scheduled rule and its rules cannot invoke Lambda: `lifecycle.sweep` reads the
deployed rule that targets the sweeper function (its `rate(15 minutes)` schedule, its target, no Input)
and invokes the target with the "Scheduled Event" EventBridge sends (AWS's recorded example,
tests/events/eventbridge_scheduled_event.json). The sweeper then lists the deployed state machines' ended
executions with the deployed environment's look-back, finalizes each through the agents' deployed delete
functions, and queries the deployed tasks table's `open` index for tasks past their bound.

- A lost status change: an aborted task whose event never reached finalize is finalized by the next
  sweep, its job deleted once, and a sweep after that deletes nothing more.
- A sensor task whose pokes stopped (its schedule never fires here; on AWS, a poke function failing before
  it records anything): the first sweep after its deadline plus `end_within` ends it FAILED, saying so,
  and deletes its schedule (the sweeper's own grant in the sensor's group).
- A task past its bound: an aborted task whose delete keeps failing (`raise_on=delete`; its agent's
  `end_within` is 1 s) is ended FAILED by the first sweep after its bound, naming the job that may still
  run; a sweep whose delete failed fails (the sweeper raises so its error alarm fires), the ones after the
  ending do not.
"""

from __future__ import annotations

import re

import pytest

from serverless_agents.agent import Phase
from serverless_agents.deployment.naming import sensor_schedule_name
from tests.rehearsal.conftest import WATCHED_BUCKET, Deployed
from tests.rehearsal.lifecycle import (
    abort_running,
    create_file_sensor,
    get,
    job_record,
    sweep,
    sweeper_rule,
    wait_past_bound,
)

pytestmark = pytest.mark.functional


def test_the_sweep_rule_runs_the_sweeper_function_every_period(deployed: Deployed) -> None:
    events = deployed.client("events")
    rule = events.describe_rule(Name=sweeper_rule(deployed))
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert "Input" not in target  # the scheduled event itself
    sweeper = deployed.function(target["Arn"])
    assert sweeper["Handler"].startswith("functions.sweeper.")
    # Four periods of look-back: a sweep that failed is made up by the next ones.
    assert sweeper["Environment"]["Variables"]["SA_SWEEP_LOOKBACK_MINUTES"] == "60"


def test_a_lost_status_change_is_finalized_by_the_sweeper(deployed: Deployed) -> None:
    task_id = abort_running(deployed, "slowjob", "example_job_slow", "lost", {})
    assert Phase(get(deployed, task_id).phase) is Phase.RUNNING  # stopped, and nobody finalized it
    assert job_record(deployed, task_id)["deletes"] == 0

    swept = sweep(deployed).result()

    assert swept["deleted"] >= 1  # this task's; others ended earlier are finalized already
    resource = get(deployed, task_id)
    assert Phase(resource.phase) is Phase.ABORTED
    assert job_record(deployed, task_id)["deletes"] == 1
    assert sweep(deployed).result()["deleted"] == 0  # a finalized task is not deleted again
    assert job_record(deployed, task_id)["deletes"] == 1


def test_a_task_whose_delete_keeps_failing_is_ended_by_its_bound(deployed: Deployed) -> None:
    task_id = abort_running(deployed, "slowjob", "example_job_slow", "overdue", {"raise_on": "delete"})

    # The first sweep finalizes the abort: its delete raises, and the sweep fails for its error alarm. The
    # task's bound is now `end_within` (1 s) away; the sweep after it ends the task. (A sweep slower than
    # that second would end it itself, after one attempt rather than two.)
    first = sweep(deployed)
    assert first.error == "Unhandled"
    assert "cannot cancel the job" in first.answer["errorMessage"]
    wait_past_bound(deployed, task_id)
    sweep(deployed)

    resource = get(deployed, task_id)
    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message.startswith("aborted")
    assert re.search(r"could not be confirmed within end_within=1s after [12] attempts?", resource.message)
    assert "may still be running" in resource.message
    assert "slowjob/" in resource.message  # the job's id: <agent>/<hex>
    assert job_record(deployed, task_id)["deletes"] == 0
    assert sweep(deployed).result()["ended"] == 0  # ended once: later sweeps neither delete nor end it


def test_a_sensor_task_whose_pokes_stopped_is_ended_by_its_bound(deployed: Deployed) -> None:
    task_id = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/never/d.csv", "sensor-stalled", timeout=1)
    (group,) = deployed.stack.physical("AWS::Scheduler::ScheduleGroup")
    assert sensor_schedule_name(task_id) in deployed.scheduler.schedules(group)

    wait_past_bound(deployed, task_id)  # its deadline (1 s) and the sensor's end_within (1 s)
    assert sweep(deployed).result()["ended"] >= 1

    resource = get(deployed, task_id)
    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message == (
        "no poke ended the task by its sensor_timeout + end_within=1s after 1 poke(s): its pokes stopped "
        "(see the files poke function's errors and its dead-letter queue)"
    )
    assert sensor_schedule_name(task_id) not in deployed.scheduler.schedules(group)
    assert sweep(deployed).result()["ended"] == 0
