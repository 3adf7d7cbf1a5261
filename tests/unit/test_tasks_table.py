"""The tasks table on moto DynamoDB: conditional writes that late or repeated writers cannot undo; items
written by earlier code load as records of their kind, and the code writes the items it wrote before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.agent import LogLink, Phase, Resource
from serverless_agents.aws.tasks_table import AsyncTask, SensorTask, TasksTable, table_definition, wake_value
from serverless_agents.exceptions import TaskNotFound

ARN = "arn:aws:states:us-east-1:123456789012:execution:sa-job:t1"
LINKS = [LogLink("Job", "https://example.invalid/jobs/1")]
#: Items as the code wrote them before `TaskRecord` was typed by kind: `write_items` run with tasks_table.py
#: at cc202e5 (tests/events/README.md).
RECORDED = json.loads((Path(__file__).parents[1] / "events" / "tasks_table_items.json").read_text())
EXECUTIONS = "arn:aws:states:us-east-1:123456789012:execution:sa-job:"
#: Attributes holding times: when the items were written, not what.
TIMES = {"created_at", "updated_at", "expires_at", "end_by", "deadline", "ended_at"}


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition("tasks"))
        yield client


@pytest.fixture
def table(client: Any) -> TasksTable:
    table = TasksTable("tasks", client=client)
    assert table.create(AsyncTask("t1", "job", execution_arn=ARN))
    return table


def progress(table: TasksTable, message: str = "poll 1") -> bool:
    report = Resource(Phase.RUNNING, message, LINKS, custom_info={"done": 0.5})
    return table.record_progress("t1", report, metadata='{"job_id":"j"}')


def finished(table: TasksTable) -> bool:
    return table.record_job_finished(
        "t1", Resource(Phase.SUCCEEDED, "done"), polls=2, outputs={"literals": {}}
    )


def test_create_inserts_once_and_a_repeat_changes_nothing(table: TasksTable) -> None:
    assert not table.create(SensorTask("t1", "other"))

    record = table.get("t1", AsyncTask)
    assert (record.agent, record.phase, record.execution_arn) == ("job", Phase.QUEUED, ARN)
    assert record.version == 1
    assert record.created_at == record.updated_at > 0
    assert not record.job_done
    assert record.cleanup is None


def test_create_sets_a_ttl(table: TasksTable, client: Any) -> None:
    item = client.get_item(TableName="tasks", Key={"id": {"S": "t1"}})["Item"]

    assert int(item["expires_at"]["N"]) - float(item["created_at"]["N"]) == pytest.approx(30 * 86_400, abs=1)


def test_get_of_an_unknown_task_is_task_not_found(table: TasksTable) -> None:
    with pytest.raises(TaskNotFound, match="'nope'"):
        table.get("nope")


def test_record_progress_writes_the_report(table: TasksTable) -> None:
    custom = {"ratio": 0.25, "nested": {"score": 1.5, "n": 3}, "label": "x"}

    report = Resource(Phase.RUNNING, "poll 1", LINKS, custom_info=custom)

    assert table.record_progress("t1", report, metadata='{"job_id":"j"}')

    record = table.get("t1")
    assert (record.phase, record.message, record.log_links) == (Phase.RUNNING, "poll 1", LINKS)
    assert record.custom_info == custom
    assert type(record.custom_info["ratio"]) is float
    assert type(record.custom_info["nested"]["score"]) is float
    assert record.metadata == '{"job_id":"j"}'
    assert record.version == 2


def test_version_increments_on_each_write(table: TasksTable) -> None:
    versions = [table.get("t1").version]
    for message in ("poll 1", "poll 2"):
        progress(table, message)
        versions.append(table.get("t1").version)
    finished(table)
    versions.append(table.get("t1").version)

    assert versions == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "ending", [finished, lambda table: table.claim_cleanup("t1", AsyncTask)], ids=["job", "cleanup"]
)
def test_record_progress_after_the_task_ended_writes_nothing(table: TasksTable, ending: Any) -> None:
    ending(table)
    before = table.get("t1")

    assert not progress(table, "late poll")
    assert table.get("t1") == before


def test_record_job_finished_stores_outputs_and_blocks_cleanup(table: TasksTable) -> None:
    report = Resource(Phase.SUCCEEDED, "done", LINKS, custom_info={"job_id": "j"})

    assert table.record_job_finished(
        "t1", report, polls=4, outputs={"literals": {"x": 1}}, outputs_ref="s3://b/k"
    )

    record = table.get("t1")
    assert (record.phase, record.message, record.job_done) == (Phase.SUCCEEDED, "done", True)
    assert (record.outputs, record.outputs_ref) == ({"literals": {"x": 1}}, "s3://b/k")
    assert record.polls == 4
    assert table.claim_cleanup("t1", AsyncTask) is None
    assert table.get("t1").cleanup is None


def test_record_job_finished_after_cleanup_was_claimed_writes_nothing(table: TasksTable) -> None:
    assert table.claim_cleanup("t1", AsyncTask) is not None

    assert not finished(table)
    record = table.get("t1")
    assert (record.phase, record.job_done, record.outputs) == (Phase.QUEUED, False, None)


def test_cleanup_is_claimed_once_until_released(table: TasksTable) -> None:
    claimed = table.claim_cleanup("t1", AsyncTask)
    assert claimed is not None
    assert (claimed.task_id, claimed.cleanup) == ("t1", "claimed")
    assert table.claim_cleanup("t1", AsyncTask) is None

    table.release_cleanup("t1", Phase.FAILED, "get failed", "timeout")
    released = table.get("t1")
    assert (released.cleanup, released.message) == ("failed", "delete failed, will retry: timeout")

    again = table.claim_cleanup("t1", AsyncTask)
    assert again is not None
    assert again.cleanup == "claimed"
    assert table.claim_cleanup("t1", AsyncTask) is None


def test_claim_cleanup_of_an_unknown_task_is_none(table: TasksTable, client: Any) -> None:
    assert table.claim_cleanup("ghost", AsyncTask) is None
    assert "Item" not in client.get_item(TableName="tasks", Key={"id": {"S": "ghost"}})


def test_finish_cleanup_records_the_ending(table: TasksTable) -> None:
    assert table.claim_cleanup("t1", AsyncTask) is not None

    table.finish_cleanup("t1", Phase.ABORTED, "aborted by the user")

    record = table.get("t1")
    assert (record.cleanup, record.phase, record.message) == ("done", Phase.ABORTED, "aborted by the user")
    assert table.claim_cleanup("t1", AsyncTask) is None


@pytest.mark.parametrize(
    "write",
    [
        lambda table: table.record_progress("ghost", Resource(Phase.RUNNING, "poll")),
        lambda table: table.record_job_finished("ghost", Resource(Phase.SUCCEEDED, "done"), polls=1),
    ],
    ids=["progress", "finished"],
)
def test_a_report_for_an_unknown_task_creates_nothing(table: TasksTable, client: Any, write: Any) -> None:
    # Reachable: the item's TTL (30 days) is shorter than the longest execution_timeout (1 year).
    assert not write(table)
    assert "Item" not in client.get_item(TableName="tasks", Key={"id": {"S": "ghost"}})


@pytest.fixture
def bounded(table: TasksTable) -> TasksTable:
    """t1 unbounded (as sensors are), and two async tasks: b1 due in an hour, b2 due a minute ago."""
    now = time.time()
    for task_id, end_by in (("b1", now + 3600), ("b2", now - 60)):
        assert table.create(AsyncTask(task_id, "job", end_within=600, end_by=end_by))
    return table


def test_overdue_finds_the_open_tasks_past_their_bound_only(bounded: TasksTable) -> None:
    assert bounded.overdue(AsyncTask, time.time()) == ["b2"]
    assert bounded.overdue(AsyncTask, time.time() + 7200) == ["b2", "b1"]  # oldest bound first
    assert bounded.overdue(SensorTask, time.time() + 7200) == []


@pytest.mark.parametrize(
    "ending",
    [
        lambda table: table.record_job_finished("b2", Resource(Phase.SUCCEEDED, "done"), polls=1),
        lambda table: (
            table.claim_cleanup("b2", AsyncTask) and table.finish_cleanup("b2", Phase.ABORTED, "aborted")
        ),
        lambda table: table.end_unconfirmed("b2", Phase.FAILED, "gave up"),
    ],
    ids=["job", "cleanup", "bound"],
)
def test_every_ending_takes_the_task_out_of_the_open_index(bounded: TasksTable, ending: Any) -> None:
    ending(bounded)

    assert bounded.overdue(AsyncTask, time.time()) == []


def test_the_first_cleanup_claim_brings_the_bound_to_end_within(bounded: TasksTable) -> None:
    before = time.time()
    claimed = bounded.claim_cleanup("b1", AsyncTask)
    assert claimed is not None
    assert claimed.end_by is not None
    assert before + 600 <= claimed.end_by <= time.time() + 600
    assert claimed.cleanup_attempts == 1
    bounded.release_cleanup("b1", Phase.RETRYABLE_FAILED, "get throttled", "platform down")

    again = bounded.claim_cleanup("b1", AsyncTask)  # a later claim never moves the bound further out

    assert again is not None
    assert (again.end_by, again.cleanup_attempts) == (claimed.end_by, 2)


def test_a_claim_past_the_bound_leaves_it(bounded: TasksTable) -> None:
    claimed = bounded.claim_cleanup("b2", AsyncTask)

    assert claimed is not None
    assert claimed.end_by is not None
    assert claimed.end_by < time.time()


def test_release_keeps_the_first_reason_and_the_last_error(bounded: TasksTable) -> None:
    for reason, error in (("get failed", "e1"), ("failed: again", "e2")):
        assert bounded.claim_cleanup("b1", AsyncTask) is not None
        bounded.release_cleanup("b1", Phase.RETRYABLE_FAILED, reason, error)

    record = bounded.get("b1")
    assert (record.ending_phase, record.ending_message) == (Phase.RETRYABLE_FAILED, "get failed")
    assert (record.cleanup_error, record.cleanup_attempts, record.phase) == ("e2", 2, Phase.QUEUED)


def test_end_unconfirmed_ends_the_task_for_good(bounded: TasksTable) -> None:
    assert bounded.claim_cleanup("b2", AsyncTask) is not None
    bounded.release_cleanup("b2", Phase.FAILED, "get failed", "e1")

    assert bounded.end_unconfirmed("b2", Phase.FAILED, "gave up: job j may still run")

    record = bounded.get("b2")
    assert (record.phase, record.message, record.cleanup) == (
        Phase.FAILED,
        "gave up: job j may still run",
        "unconfirmed",
    )
    assert bounded.claim_cleanup("b2", AsyncTask) is None  # no delete after the ending
    assert not bounded.record_job_finished("b2", Resource(Phase.SUCCEEDED, "done"), polls=1)
    assert not bounded.end_unconfirmed("b2", Phase.FAILED, "again")
    assert bounded.get("b2").message == "gave up: job j may still run"


def test_end_unconfirmed_leaves_a_task_that_ended(bounded: TasksTable) -> None:
    assert bounded.claim_cleanup("b2", AsyncTask) is not None
    bounded.finish_cleanup("b2", Phase.ABORTED, "aborted")

    assert not bounded.end_unconfirmed("b2", Phase.FAILED, "gave up")
    assert bounded.get("b2").phase is Phase.ABORTED


def test_an_abort_request_is_noted_only_while_the_task_is_open(table: TasksTable) -> None:
    table.create(AsyncTask("open-1", "job"))
    table.create(AsyncTask("done-1", "job"))
    table.record_job_finished("done-1", Resource(Phase.SUCCEEDED, "done"), polls=1)

    assert table.request_abort("open-1")
    assert not table.request_abort("done-1")
    assert table.get("open-1").abort_requested
    assert not table.get("done-1").abort_requested


def test_a_sensors_watch_is_keyed_by_its_agent_and_found_by_that_agent_only(client: Any) -> None:
    # The `watching` index's key starts with the agent's name, so IAM can keep a sensor's queries to its
    # own tasks (dynamodb:LeadingKeys), as it keeps its reads and writes.
    table = TasksTable("tasks", client=client)
    for task_id, agent in (("files_t1", "files"), ("landing_t2", "landing")):
        assert table.create(SensorTask(task_id, agent, watch="s3://b/k"))

    assert table.tasks_watching("files", "s3://b/k") == ["files_t1"]
    assert table.tasks_watching("landing", "s3://b/k") == ["landing_t2"]
    assert table.get("files_t1").watch == "s3://b/k"
    stored = client.get_item(TableName="tasks", Key={"id": {"S": "files_t1"}})["Item"]["watch"]
    assert stored == {"S": "files_s3://b/k"}


def write_items(table: TasksTable) -> dict[str, str]:
    """Nearly every attribute either kind of task can hold, each written by the step that writes it; the
    recorded item's name for each task id."""
    # An async task: job created (named by its events), polled twice, continued as new, woken, cleanup
    # claimed, delete failed once.
    t = "job_wf-n0-a0-1"
    assert table.create(
        AsyncTask(t, "job", execution_arn=EXECUTIONS + t, end_within=600, end_by=time.time() + 3600)
    )
    created = Resource(Phase.RUNNING, "job created")
    table.record_progress(t, created, metadata='{"job_id":"j-1"}', wake=wake_value("job", "j-1"))
    record = table.record_progress(
        t, Resource(Phase.RUNNING, "poll 2", LINKS, custom_info={"done": 0.5}), polls=2
    )
    assert record is not None
    assert table.continue_execution(record, EXECUTIONS + t + "-1")
    table.wake(t)
    assert table.claim_cleanup(t, AsyncTask) is not None
    table.release_cleanup(t, Phase.RETRYABLE_FAILED, "the job's get kept failing", "connection refused")
    # An async task whose job finished with inline outputs.
    t = "job_wf-n1-a0-2"
    assert table.create(
        AsyncTask(t, "job", execution_arn=EXECUTIONS + t, end_within=600, end_by=time.time() + 3600)
    )
    table.record_progress(t, created, metadata='{"job_id":"j-2"}')
    outputs = {"literals": {"o0": {"scalar": {"primitive": {"integer": "7"}}}}}
    assert table.record_job_finished(t, Resource(Phase.SUCCEEDED, "done", LINKS), polls=3, outputs=outputs)
    # An async task aborted before its job was created.
    t = "job_wf-n2-a0-3"
    assert table.create(
        AsyncTask(t, "job", execution_arn=EXECUTIONS + t, end_within=600, end_by=time.time() + 3600)
    )
    assert table.request_abort(t)
    assert table.claim_cleanup(t, AsyncTask) is not None
    assert table.finish_cleanup(t, Phase.ABORTED, "aborted before it started")
    # Sensor tasks: one waiting (two pokes, the last failed), one ended by its poke.
    for t, end in (("files_wf-n3-a0-4", False), ("files_wf-n4-a0-5", True)):
        deadline = time.time() + 3600
        sensor = SensorTask(
            t,
            "files",
            phase=Phase.RUNNING,
            message="waiting for the condition",
            request={"template": {"type": "sensor"}},
            watch="s3://bucket/key",
            deadline=deadline,
            schedule=f"sa-poke-{t}",
            end_within=300,
            end_by=deadline + 300,
        )
        assert table.create(sensor)
        table.record_poke(t, "waiting for the condition", 0)
        table.record_poke(t, "poke failed (1 of 3): OSError: boom", 1)
        if end:
            pokes = table.get(t, SensorTask).pokes + 1
            assert table.record_job_finished(
                t, Resource(Phase.SUCCEEDED, "the condition is met"), pokes=pokes
            )
    # A sensor task whose request was too large for an item, stopped by DeleteTask.
    t = "files_wf-n5-a0-6"
    ref = "s3://payloads/requests/files/x.json"
    end_by = time.time() + 600
    assert table.create(
        SensorTask(
            t,
            "files",
            phase=Phase.RUNNING,
            request_ref=ref,
            schedule="sa-poke-x",
            end_within=300,
            end_by=end_by,
        )
    )
    assert table.claim_cleanup(t, SensorTask) is not None
    assert table.finish_cleanup(t, Phase.ABORTED, "aborted: DeleteTask was called")
    return {
        "job_wf-n0-a0-1": "async_cleanup_failed",
        "job_wf-n1-a0-2": "async_succeeded",
        "job_wf-n2-a0-3": "async_aborted",
        "files_wf-n3-a0-4": "sensor_waiting",
        "files_wf-n4-a0-5": "sensor_succeeded",
        "files_wf-n5-a0-6": "sensor_aborted",
    }


def without_times(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in TIMES}


def test_the_code_writes_the_items_it_wrote_before(client: Any) -> None:
    names = write_items(TasksTable("tasks", client=client))

    for task_id, name in names.items():
        item = client.get_item(TableName="tasks", Key={"id": {"S": task_id}})["Item"]
        expected = dict(RECORDED[name])
        if name == "sensor_succeeded":
            # The one difference: a sensor task no longer records the get count it never had (always 0).
            assert expected.pop("polls") == {"N": "0"}
        assert without_times(item) == without_times(expected), name
        assert item.keys() == expected.keys(), name


def test_items_written_before_load_as_records_of_their_kind(client: Any) -> None:
    for item in RECORDED.values():
        client.put_item(TableName="tasks", Item=item)
    table = TasksTable("tasks", client=client)

    failed = table.get("job_wf-n0-a0-1", AsyncTask)
    assert (failed.phase, failed.message, failed.log_links, failed.custom_info) == (
        Phase.RUNNING,
        "delete failed, will retry: connection refused",
        LINKS,
        {"done": 0.5},
    )
    assert (failed.metadata, failed.polls, failed.wakes, failed.cleanup, failed.cleanup_attempts) == (
        '{"job_id":"j-1"}',
        2,
        1,
        "failed",
        1,
    )
    assert failed.execution_arn == EXECUTIONS + "job_wf-n0-a0-1-1"
    assert failed.earlier_executions == [EXECUTIONS + "job_wf-n0-a0-1"]
    assert (failed.ending_phase, failed.ending_message, failed.cleanup_error) == (
        Phase.RETRYABLE_FAILED,
        "the job's get kept failing",
        "connection refused",
    )
    assert (failed.end_within, failed.ended_at, failed.version) == (600, None, 7)
    assert failed.end_by == float(RECORDED["async_cleanup_failed"]["end_by"]["N"])

    succeeded = table.get("job_wf-n1-a0-2", AsyncTask)
    assert (succeeded.phase, succeeded.job_done, succeeded.polls, succeeded.outputs_ref) == (
        Phase.SUCCEEDED,
        True,
        3,
        None,
    )
    assert succeeded.outputs == {"literals": {"o0": {"scalar": {"primitive": {"integer": "7"}}}}}
    assert succeeded.ended_at == float(RECORDED["async_succeeded"]["ended_at"]["N"])

    aborted = table.get("job_wf-n2-a0-3", AsyncTask)
    assert (aborted.phase, aborted.abort_requested, aborted.metadata) == (Phase.ABORTED, True, None)

    waiting = table.get("files_wf-n3-a0-4", SensorTask)
    # The stored `watch` carries its agent's prefix (the index's key); the record holds the sensor's own.
    assert (waiting.watch, waiting.pokes, waiting.poke_errors) == ("s3://bucket/key", 2, 1)
    assert (waiting.request, waiting.schedule) == (
        {"template": {"type": "sensor"}},
        "sa-poke-files_wf-n3-a0-4",
    )
    assert waiting.deadline == float(RECORDED["sensor_waiting"]["deadline"]["N"])

    met = table.get("files_wf-n4-a0-5", SensorTask)
    assert (met.phase, met.job_done, met.pokes) == (Phase.SUCCEEDED, True, 3)

    stopped = table.get("files_wf-n5-a0-6", SensorTask)
    assert (stopped.phase, stopped.request, stopped.request_ref) == (
        Phase.ABORTED,
        None,
        "s3://payloads/requests/files/x.json",
    )


def test_a_task_of_another_kind_is_not_found_nor_claimed(client: Any) -> None:
    for item in RECORDED.values():
        client.put_item(TableName="tasks", Item=item)
    table = TasksTable("tasks", client=client)

    assert isinstance(table.get("files_wf-n3-a0-4"), SensorTask)
    with pytest.raises(TaskNotFound, match="no async task with id 'files_wf-n3-a0-4'"):
        table.get("files_wf-n3-a0-4", AsyncTask)
    with pytest.raises(TaskNotFound, match="no sensor task"):
        table.get("job_wf-n0-a0-1", SensorTask)
    before = client.get_item(TableName="tasks", Key={"id": {"S": "files_wf-n3-a0-4"}})["Item"]
    assert table.claim_cleanup("files_wf-n3-a0-4", AsyncTask) is None
    assert client.get_item(TableName="tasks", Key={"id": {"S": "files_wf-n3-a0-4"}})["Item"] == before
    claimed = table.claim_cleanup("files_wf-n3-a0-4", SensorTask)
    assert isinstance(claimed, SensorTask)
    assert claimed.cleanup == "claimed"
