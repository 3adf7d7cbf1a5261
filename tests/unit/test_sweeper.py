"""The sweeper's loop over the real tasks table on moto DynamoDB, invoking the agent's delete function
deployed on moto Lambda (run in this process), with an in-memory fake of Step Functions: moto cannot make
an execution that ended TIMED_OUT two days ago. One ending that cannot be finalized does not keep the
others from it, the sweep still reports the failure, and every task past its bound ends, naming its job."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from serverless_agents.agent import Phase, Resource
from serverless_agents.aws.tasks_table import AsyncTask, SensorTask, TasksTable, table_definition
from serverless_agents.exceptions import ServiceUnavailable
from serverless_agents.runtime.async_steps import CleanupReason
from serverless_agents.runtime.finalize import Finalizer
from serverless_agents.runtime.sensors import SensorSchedules
from serverless_agents.runtime.sweeper import Sweep, Sweeper, bound_ending
from tests.unit.moto_lambda import REGION, deploy_function, moto_with_lambdas

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sa-job"
METADATA = '{"job_id":"q-01b2","warehouse":"w"}'


def execution_arn(name: str) -> str:
    return f"{ARN.replace(':stateMachine:', ':execution:')}:{name}"


class ExecutionDoesNotExist(Exception):
    pass


class FakeStepFunctions:
    """Executions by name: (status, stop date)."""

    class exceptions:  # as boto3 clients name it
        ExecutionDoesNotExist = ExecutionDoesNotExist

    def __init__(self, executions: dict[str, tuple[str, datetime]]) -> None:
        self.executions = executions

    def get_paginator(self, name: str) -> FakeStepFunctions:
        assert name == "list_executions"
        return self

    def paginate(self, stateMachineArn: str, statusFilter: str) -> list[dict[str, Any]]:
        newest_first = sorted(self.executions.items(), key=lambda item: item[1][1], reverse=True)
        return [
            {
                "executions": [
                    self._summary(name) for name, (status, _) in newest_first if status == statusFilter
                ]
            }
        ]

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        name = executionArn.rsplit(":", 1)[-1]
        if name not in self.executions:
            raise ExecutionDoesNotExist(name)
        return {**self._summary(name), "input": json.dumps({"task_id": name, "agent": "job"})}

    def _summary(self, name: str) -> dict[str, Any]:
        status, stopped = self.executions[name]
        return {
            "executionArn": execution_arn(name),
            "stateMachineArn": ARN,
            "name": name,
            "status": status,
            "stopDate": stopped,
        }


#: The task ids the deployed delete function fails for, and those it was invoked for.
failing_deletes: set[str] = set()
delete_calls: list[str] = []


def delete(event: dict[str, Any], context: Any) -> dict[str, bool]:
    """The agent's delete function, over the real table: claim cleanup, then fail (for the task ids in
    `failing_deletes`) or delete once, as runtime.async_steps' delete does."""
    table = TasksTable("tasks", client=boto3.client("dynamodb", region_name=REGION))
    task_id = event["task_id"]
    delete_calls.append(task_id)
    reason = CleanupReason.from_event(event)
    if table.claim_cleanup(task_id, AsyncTask) is None:
        return {"deleted": False}
    if task_id in failing_deletes:
        table.release_cleanup(task_id, reason.phase, reason.message, "boom")
        raise RuntimeError("boom")
    table.finish_cleanup(task_id, reason.phase, reason.message)
    return {"deleted": True}


@pytest.fixture
def table() -> Iterator[TasksTable]:
    failing_deletes.clear()
    delete_calls.clear()
    with moto_with_lambdas():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_definition("tasks"))
        deploy_function(boto3.client("lambda", region_name=REGION), "sa-job-delete", f"{__name__}.delete")
        yield TasksTable("tasks", client=client)


def sweep(table: TasksTable, sfn: FakeStepFunctions) -> Sweep:
    finalizer = Finalizer("sa", boto3.client("lambda", region_name=REGION))
    scheduler = boto3.client("scheduler", region_name=REGION)
    schedules = lambda agent: SensorSchedules(f"sa-{agent}", scheduler)  # noqa: E731 (as wiring names them)
    return Sweeper(table, [ARN], finalizer, sfn, schedules).sweep(timedelta(hours=1))


def task(table: TasksTable, task_id: str, end_by: float, metadata: str | None = METADATA) -> None:
    record = AsyncTask(task_id, "job", execution_arn=execution_arn(task_id), end_within=60, end_by=end_by)
    assert table.create(record)
    if metadata is not None:
        assert table.record_progress(task_id, Resource(Phase.RUNNING, "job created"), metadata=metadata)


def test_sweeps_every_ending_in_the_window_and_only_those(table: TasksTable) -> None:
    now = datetime.now(UTC)
    later = time.time() + 3600
    for name in ("t1", "t2", "old"):
        task(table, name, later)
    sfn = FakeStepFunctions(
        {
            "t1": ("ABORTED", now),
            "t2": ("ABORTED", now - timedelta(minutes=30)),
            "old": ("ABORTED", now - timedelta(hours=3)),
        }
    )

    result = sweep(table, sfn)

    assert result.counts() == {"seen": 2, "deleted": 2, "ended": 0}
    assert delete_calls == ["t1", "t2"]


def test_one_failing_ending_does_not_stop_the_others(table: TasksTable) -> None:
    now = datetime.now(UTC)
    for name in ("t1", "t2", "t3"):
        task(table, name, time.time() + 3600)
    sfn = FakeStepFunctions(
        {name: ("FAILED", now - timedelta(minutes=n)) for n, name in enumerate(("t1", "t2", "t3"))}
    )
    failing_deletes.update({"t1"})

    result = sweep(table, sfn)

    assert delete_calls == ["t1", "t2", "t3"]
    assert result.deleted == 2
    with pytest.raises(ServiceUnavailable, match=r"1 of 3 endings not finalized: t1: "):
        result.raise_for_failures()


def test_a_task_whose_delete_kept_failing_ends_at_its_bound_naming_its_job(table: TasksTable) -> None:
    task(table, "t1", time.time() - 1)  # the bound has passed
    sfn = FakeStepFunctions({"t1": ("FAILED", datetime.now(UTC) - timedelta(hours=2))})  # out of the window
    failing_deletes.update({"t1"})
    assert table.claim_cleanup("t1", AsyncTask) is not None
    table.release_cleanup(
        "t1", Phase.RETRYABLE_FAILED, "RetryableAgentError: the warehouse is busy", "HTTP 503"
    )

    result = sweep(table, sfn)

    assert result.ended == ["t1"]
    assert delete_calls == []  # it was tried, and failed: no delete after the bound
    record = table.get("t1")
    assert (record.phase, record.cleanup) == (Phase.RETRYABLE_FAILED, "unconfirmed")
    assert record.message == (
        "RetryableAgentError: the warehouse is busy; the agent's delete could not be confirmed within "
        f"end_within=60s after 1 attempt (last error: HTTP 503): job {METADATA} may still be running"
    )
    again = sweep(table, sfn)
    assert again.ended == []
    assert table.get("t1").message == record.message


def test_a_task_nobody_cleaned_up_gets_one_delete_before_its_bound_ends_it(table: TasksTable) -> None:
    past = time.time() - 1
    for name in ("deletes", "fails"):
        task(table, name, past)
    old = datetime.now(UTC) - timedelta(days=2)
    sfn = FakeStepFunctions({"deletes": ("ABORTED", old), "fails": ("TIMED_OUT", old)})
    failing_deletes.update({"fails"})

    result = sweep(table, sfn)

    assert sorted(delete_calls) == ["deletes", "fails"]
    assert result.ended == ["fails"]
    assert table.get("deletes").phase is Phase.ABORTED  # its delete ran: an ordinary ending
    failed = table.get("fails")
    assert failed.phase is Phase.FAILED
    assert failed.message.startswith("timed out: the task ran past its execution_timeout; ")
    assert "q-01b2" in failed.message


def test_a_task_whose_execution_still_runs_is_left_to_its_timeout(table: TasksTable) -> None:
    task(table, "t1", time.time() - 1)
    sfn = FakeStepFunctions({"t1": ("RUNNING", datetime.now(UTC))})

    result = sweep(table, sfn)

    assert (result.ended, delete_calls) == ([], [])
    assert table.get("t1").phase is Phase.RUNNING


def test_a_task_whose_execution_never_started_ends_without_a_delete(table: TasksTable) -> None:
    task(table, "t1", time.time() - 1, metadata=None)

    result = sweep(table, FakeStepFunctions({}))

    assert (result.ended, delete_calls) == (["t1"], [])
    record = table.get("t1")
    assert record.phase is Phase.FAILED
    assert record.message == (
        "the task did not end by its bound (execution_timeout + end_within); "
        "ended by its bound, no job was recorded"
    )


def test_the_message_is_one_line_and_quotes_at_most_a_few_hundred_characters() -> None:
    record = AsyncTask(
        "t1",
        "job",
        metadata='{"job_id":"' + "j" * 5000 + '"}',
        ending_phase=Phase.ABORTED,
        ending_message="aborted (DeleteTask or StopExecution)",
        cleanup_error="line one\nline two " + "e" * 5000,
        cleanup_attempts=3,
    )

    phase, message = bound_ending(record)

    assert phase is Phase.FAILED
    assert "\n" not in message
    assert len(message) < 1000
    assert message.startswith(
        "aborted (DeleteTask or StopExecution); the agent's delete could not be confirmed "
        "after 3 attempts (last error: line one line two eee"
    )
    assert message.endswith("may still be running")


def waiting_sensor_task(table: TasksTable, task_id: str, end_by: float) -> None:
    """A FileSensor task as the api registers it: RUNNING, watching, with its schedule in its group."""
    scheduler = boto3.client("scheduler", region_name=REGION)
    with contextlib.suppress(scheduler.exceptions.ConflictException):
        scheduler.create_schedule_group(Name="sa-files")
    SensorSchedules("sa-files", scheduler).create(
        task_id,
        "rate(1 minute)",
        "arn:aws:lambda:us-east-1:123456789012:function:sa-files-poke",
        "arn:aws:iam::123456789012:role/scheduler",
        task_id,
    )
    record = SensorTask(
        task_id,
        "files",
        phase=Phase.RUNNING,
        watch=f"s3://b/{task_id}",
        deadline=end_by - 60,
        schedule=task_id,
        end_within=60,
        end_by=end_by,
    )
    assert table.create(record)


def test_a_sensor_task_whose_pokes_stopped_ends_at_its_bound_and_loses_its_schedule(
    table: TasksTable,
) -> None:
    waiting_sensor_task(table, "stalled", end_by=time.time() - 1)
    waiting_sensor_task(table, "waiting", end_by=time.time() + 3600)

    result = sweep(table, FakeStepFunctions({}))

    assert result.ended == ["stalled"]
    stalled = table.get("stalled")
    assert stalled.phase is Phase.FAILED
    assert stalled.message == (
        "no poke ended the task by its sensor_timeout + end_within=60s after 0 poke(s): its pokes stopped "
        "(see the files poke function's errors and its dead-letter queue)"
    )
    assert table.tasks_watching("files", "s3://b/stalled") == []  # no event pokes it any more
    schedules = boto3.client("scheduler", region_name=REGION).list_schedules(GroupName="sa-files")[
        "Schedules"
    ]
    assert [s["Name"] for s in schedules] == ["waiting"]
    assert table.get("waiting").phase is Phase.RUNNING
    assert delete_calls == []  # a sensor has no job to delete
    assert sweep(table, FakeStepFunctions({})).ended == []  # ended once
