"""One table of execution endings: finalize ends a task with its phase, the sweeper lists executions in its
statuses, and nothing else is an ending (the status-change rule's statuses: tests/infra/test_events.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from serverless_agents.agent import Phase
from serverless_agents.endings import ENDED_STATUSES, EXECUTION_ENDINGS
from serverless_agents.runtime.finalize import Finalizer
from serverless_agents.runtime.sweeper import ended_executions

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sa-job"


class RecordingDeletes:
    """The agent's delete function: records what finalize asks of it."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        self.invoked.append((FunctionName, json.loads(Payload)))
        return {"Payload": io.BytesIO(b'{"deleted": true}')}


class RecordingListings:
    """Step Functions' ListExecutions: records the status filters asked for, and finds nothing."""

    def __init__(self) -> None:
        self.filters: list[str] = []

    def get_paginator(self, name: str) -> RecordingListings:
        assert name == "list_executions"
        return self

    def paginate(self, stateMachineArn: str, statusFilter: str) -> list[dict[str, Any]]:
        self.filters.append(statusFilter)
        return [{"executions": []}]


def detail(status: str) -> dict[str, Any]:
    return {
        "name": "t1",
        "status": status,
        "input": json.dumps({"task_id": "t1", "agent": "job"}),
        "error": "States.TaskFailed",
        "cause": "the job's host went away",
    }


@pytest.mark.parametrize(
    ("status", "phase", "message"),
    [
        ("ABORTED", Phase.ABORTED, "aborted (DeleteTask or StopExecution): the job's host went away"),
        ("TIMED_OUT", Phase.FAILED, "timed out: the task ran past its execution_timeout"),
        ("FAILED", Phase.FAILED, "failed: States.TaskFailed: the job's host went away"),
    ],
)
def test_finalize_ends_the_task_as_the_table_says(status: str, phase: Phase, message: str) -> None:
    deletes = RecordingDeletes()

    answer = Finalizer("sa", deletes).finalize(detail(status))

    assert answer == {"task_id": "t1", "deleted": {"deleted": True}}
    assert deletes.invoked == [("sa-job-delete", {"task_id": "t1", "phase": phase.name, "message": message})]
    assert EXECUTION_ENDINGS[status].phase is phase


def test_finalize_handles_every_ending_and_nothing_else() -> None:
    statuses = ("RUNNING", "SUCCEEDED", "PENDING_REDRIVE", *ENDED_STATUSES)
    deletes = RecordingDeletes()

    handled = [
        status for status in statuses if "ignored" not in Finalizer("sa", deletes).finalize(detail(status))
    ]

    assert handled == list(ENDED_STATUSES) == ["ABORTED", "TIMED_OUT", "FAILED"]
    assert Finalizer("sa", deletes).finalize(detail("SUCCEEDED") | {"status": ["ABORTED"]}) == {
        "ignored": "status ['ABORTED']"
    }


def test_the_sweeper_lists_executions_in_exactly_the_ended_statuses() -> None:
    listings = RecordingListings()

    assert list(ended_executions(listings, [ARN])) == []
    assert listings.filters == list(ENDED_STATUSES)
