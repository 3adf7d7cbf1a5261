"""The sweeper: cleanup for executions whose status-change event never reached the finalize Lambda.

EventBridge delivers "Step Functions Execution Status Change" at least once, but a delivery can still be
lost (a rule disabled during a deploy, a finalize that failed past its retries). On a schedule, the
sweeper lists each state machine's executions that ended ABORTED, TIMED_OUT or FAILED within a look-back
window and finalizes each again. Finalizing is idempotent (the tasks table's cleanup claim), so a task
cleaned up already costs one conditional write and nothing else.

The local stack's status-change driver lists and shapes events with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from serverless_agents import aws
from serverless_agents.exceptions import ServerlessAgentsError, ServiceUnavailable
from serverless_agents.runtime.finalize import finalize_execution

ENDED_STATUSES = ("ABORTED", "TIMED_OUT", "FAILED")


def ended_executions(
    sfn_client: Any, state_machine_arns: Iterable[str], since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Summaries of executions that ended in a watched status (after `since`, when given)."""
    for arn in state_machine_arns:
        for status in ENDED_STATUSES:
            yield from _ended(sfn_client, arn, status, since)


def _ended(sfn_client: Any, arn: str, status: str, since: datetime | None) -> Iterator[dict[str, Any]]:
    for page in sfn_client.get_paginator("list_executions").paginate(
        stateMachineArn=arn, statusFilter=status
    ):
        for summary in page["executions"]:
            stopped = summary.get("stopDate")
            if since is not None and isinstance(stopped, datetime) and stopped < since:
                return  # newest first: the rest ended before the window
            yield summary


def status_change_event(execution: dict[str, Any]) -> dict[str, Any]:
    """The EventBridge event for a described execution, as Step Functions sends it (tests/events/)."""

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

    _, _, _, region, account, *_ = execution["executionArn"].split(":")
    return {
        "version": "0",
        "id": execution["executionArn"].rsplit(":", 1)[-1],
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "region": region,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": millis(execution.get("startDate")),
            "stopDate": millis(execution.get("stopDate")),
            "input": execution.get("input"),
            "output": execution.get("output"),
            "error": execution.get("error"),
            "cause": execution.get("cause"),
        },
    }


def sweep(
    state_machine_arns: Iterable[str],
    deployment: str,
    lookback: timedelta,
    sfn_client: Any = None,
    lambda_client: Any = None,
) -> dict[str, int]:
    """Finalize every execution that ended within `lookback`; returns how many were seen and cleaned.

    One ending that cannot be finalized does not stop the others; the sweep raises at the end, so its error
    alarm fires and the next sweep tries again.
    """
    sfn = sfn_client or aws.client("stepfunctions")
    since = datetime.now(UTC) - lookback
    seen = deleted = 0
    failures: list[str] = []
    for summary in ended_executions(sfn, state_machine_arns, since):
        seen += 1
        try:
            execution = sfn.describe_execution(executionArn=summary["executionArn"])
            result = finalize_execution(status_change_event(execution)["detail"], deployment, lambda_client)
        except ServerlessAgentsError as e:
            failures.append(f"{summary['name']}: {e}")
            continue
        deleted += int(bool(result.get("deleted", {}).get("deleted")))
    if failures:
        raise ServiceUnavailable(
            f"{len(failures)} of {seen} endings not finalized: {'; '.join(failures[:5])}"
        )
    return {"seen": seen, "deleted": deleted}
