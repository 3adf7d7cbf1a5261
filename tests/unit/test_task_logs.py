"""A task's log lines from its agent's log group (runtime.task_logs), and how the local stack fills that group
(local.log_capture): real boto3 against moto's CloudWatch Logs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.exceptions import InvalidRequest
from serverless_agents.local import log_capture
from serverless_agents.local.log_capture import LogCapture
from serverless_agents.runtime.task_logging import end_task, log_for_task
from serverless_agents.runtime.task_logs import TaskLogs, task_filter_pattern

GROUP = "/aws/lambda/dep-job"


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName="s")
        yield client


NOW = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days


def put(logs: Any, *messages: str) -> None:
    events = [{"timestamp": NOW + n, "message": m} for n, m in enumerate(messages)]
    logs.put_log_events(logGroupName=GROUP, logStreamName="s", logEvents=events)


def line(task_id: str | None, message: str, **extra: Any) -> str:
    return json.dumps(
        {"level": "INFO", "message": message, **({"task_id": task_id} if task_id else {}), **extra}
    )


def test_a_page_holds_the_tasks_own_lines_whatever_the_filter_matched(logs: Any) -> None:
    # Lines a filter could match by text: another task's naming this one, a plain line, one without the key.
    put(
        logs,
        line("dep-job-a", "first"),
        line("dep-job-b", "about dep-job-a"),
        'plain text {"task_id": "dep-job-a"}',
        line(None, "no task", note="dep-job-a"),
        line("dep-job-a", "boom", level="ERROR", exception="Traceback: ValueError"),
    )

    page = TaskLogs("dep", logs).page("job", "dep-job-a")

    assert [(ln.timestamp_ms, ln.message) for ln in page.lines] == [
        (NOW, "INFO first"),
        (NOW + 4, "ERROR boom\nTraceback: ValueError"),
    ]
    assert page.token == ""


def test_pages_follow_cloudwatchs_token_and_refuse_a_made_up_one(logs: Any) -> None:
    put(logs, *(line("dep-job-a", f"line {n}") for n in range(5)))
    reader = TaskLogs("dep", logs)

    first = reader.page("job", "dep-job-a", limit=2)
    second = reader.page("job", "dep-job-a", first.token, limit=2)
    with pytest.raises(InvalidRequest) as long_token:
        reader.page("job", "dep-job-a", "x" * 5000)

    assert [ln.message for ln in first.lines + second.lines] == [f"INFO line {n}" for n in range(4)]
    assert first.token
    assert long_token.value.field == "token"


def test_a_group_not_made_yet_is_an_empty_page() -> None:
    with mock_aws():
        page = TaskLogs("dep", boto3.client("logs", region_name="us-east-1")).page("never", "dep-never-a")

    assert page.lines == []
    assert page.token == ""


def test_the_filter_is_cloudwatchs_json_equality_on_the_task_id() -> None:
    assert task_filter_pattern("dep-job-n0-0-abc") == '{ $.task_id = "dep-job-n0-0-abc" }'


@pytest.fixture
def capture(logs: Any) -> Iterator[LogCapture]:
    capture = LogCapture(logs, {"dep-job-get": GROUP})
    capture.install()
    yield capture
    capture.uninstall()


def captured(logs: Any) -> list[dict[str, Any]]:
    events = logs.filter_log_events(logGroupName=GROUP)["events"]
    return [json.loads(e["message"]) for e in events if e["logStreamName"] != "s"]


def test_an_invocations_records_reach_its_group_with_the_task_id_and_no_other_threads(
    capture: LogCapture, logs: Any
) -> None:
    chatter = logging.getLogger("some.library")
    chatter.info("before the call")  # no invocation in this thread: not the function's
    with capture.invocation("dep-job-get", "req-1"):
        log_for_task("dep-job-a")
        chatter.info("polled %s", "it")
        end_task()
        chatter.info("after its task")
    with capture.invocation("not-planned", "req-2"):
        chatter.warning("a function of no log group")

    lines = captured(logs)

    assert [(ln["message"], ln.get("task_id"), ln["requestId"], ln["logger"]) for ln in lines] == [
        ("polled it", "dep-job-a", "req-1", "some.library"),
        ("after its task", None, "req-1", "some.library"),
    ]


def test_an_invocation_keeps_at_most_its_bound_and_says_how_many_more(
    capture: LogCapture, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_capture, "MAX_LINES_PER_INVOCATION", 3)
    with capture.invocation("dep-job-get", "req-1"):
        for n in range(5):
            logging.getLogger("x").info("line %d", n)

    assert [ln["message"] for ln in captured(logs)] == ["line 0", "line 1", "line 2", "2 more lines not kept"]


def test_a_functions_streams_are_bounded(
    capture: LogCapture, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_capture, "MAX_LINES_PER_STREAM", 2)
    monkeypatch.setattr(log_capture, "STREAMS_KEPT", 2)
    for n in range(5):
        with capture.invocation("dep-job-get", f"req-{n}"):
            logging.getLogger("x").info("call %d a", n)
            logging.getLogger("x").info("call %d b", n)

    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=GROUP)["logStreams"]]

    assert len([s for s in streams if s != "s"]) == 2
    assert sorted(ln["message"] for ln in captured(logs)) == ["call 3 a", "call 3 b", "call 4 a", "call 4 b"]


def test_the_terminal_keeps_its_level_while_capturing() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    before = (root.level, handler.level)
    root.setLevel(logging.WARNING)
    try:
        with mock_aws():
            capture = LogCapture(boto3.client("logs", region_name="us-east-1"), {})
            capture.install()
            during = (root.getEffectiveLevel(), handler.level)
            capture.uninstall()
        after = (root.level, handler.level)
    finally:
        root.removeHandler(handler)
        root.setLevel(before[0])

    assert during == (logging.INFO, logging.WARNING)
    assert after == (logging.WARNING, before[1])
