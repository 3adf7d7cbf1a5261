"""The tasks table's guards for #21: a final record never changes (item 5), and a task follows the chain of
its executions (item 1). Real boto3 on moto DynamoDB."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.agent import Phase, Resource
from serverless_agents.aws.tasks_table import AsyncTask, TasksTable, table_definition

ARN = "arn:aws:states:us-east-1:123456789012:execution:sa-job:t1"
NEXT = "arn:aws:states:us-east-1:123456789012:execution:sa-job:t1_c2"


@pytest.fixture
def table() -> Iterator[TasksTable]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition("tasks"))
        table = TasksTable("tasks", client=client)
        assert table.create(AsyncTask("t1", "job", execution_arn=ARN, end_within=60, end_by=1e12))
        yield table


ENDINGS: dict[str, Callable[[TasksTable], Any]] = {
    "job": lambda t: t.record_job_finished("t1", Resource(Phase.SUCCEEDED, "done"), polls=2),
    "cleanup": lambda t: (t.claim_cleanup("t1", AsyncTask), t.finish_cleanup("t1", Phase.ABORTED, "aborted")),
    "bound": lambda t: t.end_unconfirmed("t1", Phase.FAILED, "gave up"),
}
LATER: dict[str, Callable[[TasksTable], Any]] = {
    "progress": lambda t: t.record_progress("t1", Resource(Phase.RUNNING, "poll 9")),
    "poke": lambda t: t.record_poke("t1", "waiting for the condition", 0),
    "job ending": lambda t: t.record_job_finished("t1", Resource(Phase.FAILED, "late"), polls=9),
    "abort request": lambda t: t.request_abort("t1"),
    "claim": lambda t: t.claim_cleanup("t1", AsyncTask),
    "release": lambda t: t.release_cleanup("t1", Phase.FAILED, "get failed", "boom"),
    "finish": lambda t: t.finish_cleanup("t1", Phase.ABORTED, "aborted late"),
    "bound": lambda t: t.end_unconfirmed("t1", Phase.FAILED, "gave up late"),
}


def shown(record: AsyncTask) -> tuple[Any, ...]:
    return (record.phase, record.message, record.log_links, record.outputs, record.cleanup, record.updated_at)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("later", sorted(LATER))
def test_no_write_after_an_ending_changes_the_record(table: TasksTable, ending: str, later: str) -> None:
    ENDINGS[ending](table)
    ended = table.get("t1")
    assert ended.phase.is_terminal

    assert not LATER[later](table)

    assert shown(table.get("t1")) == shown(ended)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_every_ending_writes_the_final_marker_with_it(table: TasksTable, ending: str) -> None:
    assert table.get("t1").ended_at is None
    ENDINGS[ending](table)
    ended = table.get("t1")
    assert ended.ended_at is not None
    assert ended.created_at <= ended.ended_at <= ended.updated_at


def test_a_release_after_the_bound_ended_the_task_does_not_reopen_it(table: TasksTable) -> None:
    assert table.claim_cleanup("t1", AsyncTask) is not None  # a delete starts, and hangs
    assert table.end_unconfirmed("t1", Phase.FAILED, "gave up: job j may still run")  # the sweeper

    assert not table.release_cleanup("t1", Phase.FAILED, "aborted", "the delete failed after all")
    assert not table.finish_cleanup("t1", Phase.ABORTED, "aborted")

    record = table.get("t1")
    assert (record.phase, record.message, record.cleanup) == (
        Phase.FAILED,
        "gave up: job j may still run",
        "unconfirmed",
    )
    assert table.claim_cleanup("t1", AsyncTask) is None


def test_a_task_follows_its_chain_and_keeps_the_earlier_executions(table: TasksTable) -> None:
    record = table.record_progress("t1", Resource(Phase.RUNNING, "poll 3"), polls=3)
    assert record is not None

    assert table.continue_execution(record, NEXT)
    assert not table.continue_execution(record, NEXT)  # from a stale record: it moved on

    # A retried get writes its progress again, which returns the task pointing at the successor already.
    retried = table.record_progress("t1", Resource(Phase.RUNNING, "poll 3"), polls=3)
    assert retried is not None
    assert table.continue_execution(retried, NEXT)
    moved = table.get("t1")
    assert (moved.execution_arn, moved.earlier_executions) == (NEXT, [ARN])


def test_an_abort_request_stops_progress_and_the_chain(table: TasksTable) -> None:
    record = table.record_progress("t1", Resource(Phase.RUNNING, "poll 3"), polls=3)
    assert record is not None
    assert table.request_abort("t1")

    assert table.record_progress("t1", Resource(Phase.RUNNING, "poll 4")) is None
    assert not table.continue_execution(record, NEXT)
    assert table.get("t1").execution_arn == ARN


def test_every_write_moves_the_expiry_so_a_months_long_task_outlives_the_ttl(table: TasksTable) -> None:
    client = table._client
    client.update_item(
        TableName="tasks",
        Key={"id": {"S": "t1"}},
        UpdateExpression="SET expires_at = :soon",
        ExpressionAttributeValues={":soon": {"N": str(int(time.time()) + 60)}},
    )

    assert table.record_progress("t1", Resource(Phase.RUNNING, "poll 2000"), polls=2000)

    item = client.get_item(TableName="tasks", Key={"id": {"S": "t1"}})["Item"]
    assert int(item["expires_at"]["N"]) >= int(time.time()) + 30 * 86_400 - 5


def test_chain_execution_names_are_valid_distinct_and_never_a_task_id() -> None:
    from serverless_agents.deployment.naming import chain_execution_name
    from serverless_agents.flyte.identity import check_task_id

    short, long = "run1-n0-a0-0123456789abcdef", "x" * 60 + "-a0-0123456789abcdef"
    assert chain_execution_name(short, 1) == short
    assert chain_execution_name(short, 2) == f"{short}_c2"
    names = {chain_execution_name(task, n) for task in (short, long, long[:-1] + "0") for n in range(1, 200)}
    assert len(names) == 3 * 199
    assert all(len(name) <= 80 for name in names)
    for name in names - {short, long, long[:-1] + "0"}:
        # A task id ends with its 16-character hash: a chain name cannot be mistaken for one.
        assert "_" in name[-16:]
        assert check_task_id(name) == name  # still a valid execution name
