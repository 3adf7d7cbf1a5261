"""What the project measures of a task: what GetTaskMetrics answers, for both protocols.

From the tasks table: the task's duration (created to its last change when it ended, to now while it runs),
its polls (pokes for a sensor) and the state transitions Step Functions bills for them (the model the
table's `custom_info.state_transitions` and `bench/async_cost.py` share: Started?, Create and the first
Choice, 3 per poll, 3 per continuation). From the Step Functions history of every execution of its chain:
its Lambda invocations and their GB-seconds (each invocation's time from TaskStarted to its end event, rounded
up to the millisecond as Lambda bills, times the agent's memory). From `serverless_agents.aws.prices`: the
estimated cost. A history is read a page (1,000 events) at a time and at most `MAX_HISTORY_PAGES` pages a
call (one execution holds at most 25,000 events; a long chain has many): past them the figures are marked
`partial`.

Each metric travels as Flyte's `ExecutionMetricResult` carries Prometheus' query results: `data` is a
`matrix` with one series, labelled with the task's id, holding one sample at the time of measure.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serverless_agents import aws
from serverless_agents.aws.prices import estimated_cost
from serverless_agents.aws.tasks_table import SensorTask
from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from serverless_agents.aws.tasks_table import AsyncTask, TaskRecord

# Standard workflows are billed per state transition: Started?, Create and the first Choice, then Wait, Get
# and Choice for each poll, and Continue, Continued and the successor's Started? for each execution the
# task continued as (see statemachines/async_agent.asl.json).
_STATE_TRANSITIONS_BEFORE_POLLING = 3
_STATE_TRANSITIONS_PER_POLL = 3
_STATE_TRANSITIONS_PER_CONTINUATION = 3
MAX_HISTORY_PAGES = 30
_ENDS = ("TaskSucceeded", "TaskFailed", "TaskTimedOut")

#: The metrics, in the order they are answered; a request's `queries` picks among these names.
METRICS = (
    "duration_seconds",
    "polls",
    "state_transitions",
    "lambda_invocations",
    "lambda_gb_seconds",
    "estimated_cost_usd",
)


def state_transitions(record: AsyncTask) -> int:
    """The transitions an async task's executions have made (without the final Succeed or Fail)."""
    return (
        _STATE_TRANSITIONS_BEFORE_POLLING
        + _STATE_TRANSITIONS_PER_POLL * record.polls
        + _STATE_TRANSITIONS_PER_CONTINUATION * len(record.earlier_executions)
    )


@dataclass(frozen=True)
class LambdaUse:
    invocations: int
    milliseconds: int
    partial: bool


def lambda_use(sfn: SFNClient, executions: list[str]) -> LambdaUse:
    """The Lambda invocations in the executions' histories and their billed milliseconds."""
    invocations = milliseconds = pages = 0
    for execution in executions:
        started: dict[int, float] = {}
        token = ""
        while True:
            if pages == MAX_HISTORY_PAGES:
                return LambdaUse(invocations, milliseconds, partial=True)
            pages += 1
            request: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
            if token:
                request["nextToken"] = token
            try:
                with aws.transient_errors_as_unavailable("Step Functions"):
                    answer = sfn.get_execution_history(includeExecutionData=False, **request)
            except sfn.exceptions.ExecutionDoesNotExist:
                break  # expired (90 days after it closed): nothing left to count
            for event in answer["events"]:
                kind = event["type"]
                if (
                    kind == "TaskStarted"
                    and event.get("taskStartedEventDetails", {}).get("resourceType") == "lambda"
                ):
                    started[event["id"]] = event["timestamp"].timestamp()
                elif kind in _ENDS and event.get("previousEventId") in started:
                    begun = started.pop(event["previousEventId"])
                    invocations += 1
                    milliseconds += max(1, math.ceil((event["timestamp"].timestamp() - begun) * 1000))
            token = answer.get("nextToken", "")
            if not token:
                break
    return LambdaUse(invocations, milliseconds, partial=False)


def measure(record: TaskRecord, memory_mb: int, sfn: SFNClient) -> dict[str, float]:
    """Every metric of the task, by name, and `partial` (1.0 when histories were cut short)."""
    ended = record.phase.is_terminal
    duration = max(0.0, (record.updated_at if ended else time.time()) - record.created_at)
    if isinstance(record, SensorTask):
        # A sensor task has no execution: its pokes run on a schedule, many tasks per invocation.
        return {"duration_seconds": duration, "polls": float(record.pokes), "partial": 0.0}
    executions = [*record.earlier_executions, *([record.execution_arn] if record.execution_arn else [])]
    use = lambda_use(sfn, executions)
    transitions = state_transitions(record)
    gb_seconds = use.milliseconds / 1000 * memory_mb / 1024
    return {
        "duration_seconds": duration,
        "polls": float(record.polls),
        "state_transitions": float(transitions),
        "lambda_invocations": float(use.invocations),
        "lambda_gb_seconds": gb_seconds,
        "estimated_cost_usd": estimated_cost(transitions, gb_seconds, use.invocations),
        "partial": 1.0 if use.partial else 0.0,
    }


def check_queries(queries: list[str]) -> None:
    """Refuse a query that names no metric, before anything is read."""
    for number, query in enumerate(queries):
        if query not in METRICS:
            raise InvalidRequest(f"queries[{number}]", f"{query[:80]!r} is not one of {', '.join(METRICS)}")


def metric_results(
    task_id: str, figures: dict[str, float], queries: list[str], at: float | None = None
) -> list[dict[str, Any]]:
    """`[{"metric", "data"}]` as `ExecutionMetricResult` carries them (protobuf JSON): the `queries`
    asked for (all when none), each a Prometheus `matrix` of one series with one sample."""
    check_queries(queries)
    sample_at = time.time() if at is None else at
    labels = {"task_id": task_id, "partial": "true" if figures.get("partial") else "false"}
    return [
        {
            "metric": name,
            "data": {
                "resultType": "matrix",
                "result": [{"metric": labels, "values": [[sample_at, repr(float(figures[name]))]]}],
            },
        }
        for name in (queries or METRICS)
        if name in figures
    ]
