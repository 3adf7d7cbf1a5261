"""One table of execution endings: finalize ends a task with its phase, the sweeper lists executions in its
statuses, and nothing else is an ending (the status-change rule's statuses: tests/infra/test_events.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.agent import Phase
from serverless_agents.runtime.endings import ENDED_STATUSES, EXECUTION_ENDINGS
from serverless_agents.runtime.finalize import Finalizer
from serverless_agents.runtime.sweeper import ended_executions
from tests.unit.moto_lambda import REGION, deploy_function, moto_with_lambdas

#: What the deployed delete function was invoked with: (function name, event).
delete_calls: list[tuple[str, dict[str, Any]]] = []


def record_delete(event: dict[str, Any], context: Any) -> dict[str, bool]:
    """The agent's delete function: records what finalize asks of it."""
    delete_calls.append((context.function_name, event))
    return {"deleted": True}


@pytest.fixture
def deletes() -> Iterator[Any]:
    """A Lambda client on moto, `sa-job-delete` deployed."""
    delete_calls.clear()
    with moto_with_lambdas():
        client = boto3.client("lambda", region_name=REGION)
        deploy_function(client, "sa-job-delete", f"{__name__}.record_delete")
        yield client


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
def test_finalize_ends_the_task_as_the_table_says(
    status: str, phase: Phase, message: str, deletes: Any
) -> None:
    answer = Finalizer("sa", deletes).finalize(detail(status))

    assert answer == {"task_id": "t1", "deleted": {"deleted": True}}
    assert delete_calls == [("sa-job-delete", {"task_id": "t1", "phase": phase.name, "message": message})]
    assert EXECUTION_ENDINGS[status].phase is phase


def test_finalize_invokes_a_snapstart_agents_delete_through_its_alias(deletes: Any) -> None:
    # As the CDK app deploys a SnapStart function: a published version behind the alias `live`. Invoking
    # the function itself would run $LATEST, which never restores a snapshot.
    with pytest.raises(deletes.exceptions.ResourceNotFoundException, match=r"sa-job-delete:live"):
        Finalizer("sa", deletes, snapstart=frozenset({"job"})).finalize(detail("ABORTED"))
    version = deletes.publish_version(FunctionName="sa-job-delete")["Version"]
    deletes.create_alias(FunctionName="sa-job-delete", Name="live", FunctionVersion=version)

    answer = Finalizer("sa", deletes, snapstart=frozenset({"job"})).finalize(detail("ABORTED"))

    assert answer["deleted"] == {"deleted": True}
    assert [name for name, _ in delete_calls] == ["sa-job-delete"]


def test_finalize_handles_every_ending_and_nothing_else(deletes: Any) -> None:
    statuses = ("RUNNING", "SUCCEEDED", "PENDING_REDRIVE", *ENDED_STATUSES)

    handled = [
        status for status in statuses if "ignored" not in Finalizer("sa", deletes).finalize(detail(status))
    ]

    assert handled == list(ENDED_STATUSES) == ["ABORTED", "TIMED_OUT", "FAILED"]
    assert Finalizer("sa", deletes).finalize(detail("SUCCEEDED") | {"status": ["ABORTED"]}) == {
        "ignored": "status ['ABORTED']"
    }


def test_the_sweeper_lists_executions_in_exactly_the_ended_statuses() -> None:
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        filters: list[str] = []
        sfn.meta.events.register(
            "provide-client-params.stepfunctions.ListExecutions",
            lambda params, **_: filters.append(params["statusFilter"]),
        )
        arn = sfn.create_state_machine(
            name="sa-job",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/sa-job",
        )["stateMachineArn"]

        assert list(ended_executions(sfn, [arn])) == []
        assert filters == list(ENDED_STATUSES)
