"""The sweeper: cleanup for executions whose status-change event never reached the finalize Lambda, and
the end of every task that outlived its bound.

EventBridge delivers "Step Functions Execution Status Change" at least once, but a delivery can still be
lost (a rule disabled during a deploy, a finalize that failed past its retries). On a schedule, the
sweeper lists each state machine's executions that ended ABORTED, TIMED_OUT or FAILED within a look-back
window and finalizes each again. Finalizing is idempotent (the tasks table's cleanup claim), so a task
cleaned up already costs one conditional write and nothing else.

Then it asks the tasks table, not the executions, for the open tasks past their bound (`end_by`: the
execution timeout plus the agent's `end_within`, or `end_within` after cleanup began): a task whose
delete kept failing, whose cleanup crashed half-way, or whose ending was lost longer ago than the
look-back. A task nobody tried to clean up gets its one delete first (finalizing its ended execution);
then every one still open is ended FAILED (RETRYABLE_FAILED if it was cleaned up for transient trouble),
its message naming the job that may still be running. After that, no cleanup claims it again. A sensor
task past its bound (its deadline plus `end_within`: no poke ended it, so its pokes stopped) is ended
FAILED the same way, and its schedule removed.

Last, it deletes the connection secrets (Flyte 2's `Connection.secrets`, kept per agent, project and
domain) that no task can still use: each is tagged, at every write, with the time by which the last task
using it ends (serverless_agents.aws.connection_secrets).

The local stack's status-change driver lists and shapes events with the same functions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from serverless_agents.agent import Phase
from serverless_agents.aws.tasks_table import AsyncTask, SensorTask
from serverless_agents.exceptions import ServerlessAgentsError, ServiceUnavailable
from serverless_agents.runtime.endings import ENDED_STATUSES, STATUS_CHANGE_DETAIL_TYPE, STATUS_CHANGE_SOURCE

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.literals import ExecutionStatusType
    from mypy_boto3_stepfunctions.type_defs import ExecutionListItemTypeDef

    from serverless_agents.aws.connection_secrets import ConnectionSecretStore
    from serverless_agents.aws.tasks_table import TasksTable
    from serverless_agents.runtime.finalize import Finalizer
    from serverless_agents.runtime.sensors import SensorSchedules

#: The metric functions/sweeper counts tasks ended by their bound under (alarmed in infra/cdk's Alarms).
ENDED_BY_BOUND_METRIC = "TasksEndedByBound"
# How much of the job's metadata and of the delete's error a message quotes: it stays one readable line.
_QUOTE_LIMIT = 400


def ended_executions(
    sfn_client: SFNClient, state_machine_arns: Iterable[str], since: datetime | None = None
) -> Iterator[ExecutionListItemTypeDef]:
    """Summaries of executions that ended in a watched status (after `since`, when given)."""
    for arn in state_machine_arns:
        for status in ENDED_STATUSES:
            yield from _ended(sfn_client, arn, status, since)


def _ended(
    sfn_client: SFNClient, arn: str, status: str, since: datetime | None
) -> Iterator[ExecutionListItemTypeDef]:
    # `endings` names Step Functions' own statuses; it stays free of the (dev-only) stubs' literal type.
    status_filter = cast("ExecutionStatusType", status)
    for page in sfn_client.get_paginator("list_executions").paginate(
        stateMachineArn=arn, statusFilter=status_filter
    ):
        for summary in page["executions"]:
            stopped = summary.get("stopDate")
            if since is not None and isinstance(stopped, datetime) and stopped < since:
                return  # newest first: the rest ended before the window
            yield summary


def status_change_event(execution: Mapping[str, Any]) -> dict[str, Any]:
    """The EventBridge event for a described execution, as Step Functions sends it (tests/events/)."""

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

    _, _, _, region, account, *_ = execution["executionArn"].split(":")
    return {
        "version": "0",
        "id": execution["executionArn"].rsplit(":", 1)[-1],
        "detail-type": STATUS_CHANGE_DETAIL_TYPE,
        "source": STATUS_CHANGE_SOURCE,
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


@dataclass
class Sweep:
    """What one sweep did: endings seen and deletes they ran, tasks ended by their bound, and failures."""

    seen: int = 0
    deleted: int = 0
    #: The ids of the tasks this sweep ended by their bound.
    ended: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: The connection secrets this sweep deleted (serverless_agents.aws.connection_secrets): names only.
    secrets_deleted: list[str] = field(default_factory=list)

    def raise_for_failures(self) -> None:
        """One ending that cannot be handled does not stop the others; the sweep raises at the end, so
        its error alarm fires and the next sweep tries again."""
        if self.failures:
            raise ServiceUnavailable(
                f"{len(self.failures)} of {self.seen} endings not finalized: {'; '.join(self.failures[:5])}"
            )

    def counts(self) -> dict[str, int]:
        return {"seen": self.seen, "deleted": self.deleted, "ended": len(self.ended)}


class Sweeper:
    """Watches `state_machine_arns`' executions (Step Functions) and the open tasks (the tasks table), and
    finalizes with `finalizer`; `schedules` gives a sensor agent's schedules, to remove an ended task's."""

    def __init__(
        self,
        table: TasksTable,
        state_machine_arns: Iterable[str],
        finalizer: Finalizer,
        sfn_client: SFNClient,
        schedules: Callable[[str], SensorSchedules],
        connection_secrets: ConnectionSecretStore | None = None,
    ) -> None:
        self.table = table
        self.connection_secrets = connection_secrets
        self.state_machine_arns = list(state_machine_arns)
        self.finalizer = finalizer
        self._sfn = sfn_client
        self._schedules = schedules

    def sweep(self, lookback: timedelta) -> Sweep:
        """Finalize every execution that ended within `lookback`, then end the tasks past their bound."""
        since = datetime.now(UTC) - lookback
        result = Sweep()
        for summary in ended_executions(self._sfn, self.state_machine_arns, since):
            result.seen += 1
            try:
                execution = self._sfn.describe_execution(executionArn=summary["executionArn"])
                answer = self.finalizer.finalize(status_change_event(execution)["detail"])
            except ServerlessAgentsError as e:
                result.failures.append(f"{summary['name']}: {e}")
                continue
            result.deleted += int(bool(answer.get("deleted", {}).get("deleted")))
        now = time.time()
        ends = ((AsyncTask, self.end_overdue_task), (SensorTask, self.end_overdue_sensor_task))
        for kind, end in ends:
            for task_id in self.table.overdue(kind, now):
                result.seen += 1
                try:
                    if end(task_id):
                        result.ended.append(task_id)
                except ServerlessAgentsError as e:
                    result.failures.append(f"{task_id}: {e}")
        if self.connection_secrets is not None:
            try:
                result.secrets_deleted = self.connection_secrets.sweep()
            except ServerlessAgentsError as e:
                result.failures.append(f"connection secrets: {e}")
        return result

    def end_overdue_sensor_task(self, task_id: str) -> bool:
        """End a sensor task no poke ended by its bound, and remove its schedule; True if this ended it."""
        record = self.table.get(task_id, SensorTask)
        ended = self.table.end_unconfirmed(task_id, Phase.FAILED, sensor_bound_message(record))
        # Also when a late poke ended it meanwhile: removing a removed schedule changes nothing.
        self._schedules(record.agent).remove(record.schedule)
        return ended

    def end_overdue_task(self, task_id: str) -> bool:
        """End a task past its bound, unless its execution still runs; True if this ended it."""
        record = self.table.get(task_id, AsyncTask)
        if record.cleanup is None and record.execution_arn:
            # Nobody tried its delete yet (its ending was lost, longer ago than the look-back): one try.
            try:
                execution = self._sfn.describe_execution(executionArn=record.execution_arn)
            except self._sfn.exceptions.ExecutionDoesNotExist:
                execution = None  # never started: no job to delete
            if execution is not None and execution["status"] == "RUNNING":
                return False  # its TimeoutSeconds ends it, and finalize deletes its job
            if execution is not None and execution["status"] in ENDED_STATUSES:
                # A delete that fails here leaves the task open: it ends unconfirmed below.
                with contextlib.suppress(ServerlessAgentsError):
                    self.finalizer.finalize(status_change_event(execution)["detail"])
            record = self.table.get(task_id, AsyncTask)
        return self.table.end_unconfirmed(task_id, *bound_ending(record))


def sensor_bound_message(record: SensorTask) -> str:
    """Why a sensor task ended by its bound: its pokes stopped, and where to look."""
    bound = "its sensor_timeout" + (f" + end_within={record.end_within}s" if record.end_within else "")
    return (
        f"no poke ended the task by {bound} after {record.pokes} poke(s): its pokes stopped "
        f"(see the {record.agent} poke function's errors and its dead-letter queue)"
    )


def bound_ending(record: AsyncTask) -> tuple[Phase, str]:
    """The phase and one-line message of a task ended by its bound: why it was being cleaned up, that
    delete could not be confirmed, and which job may still run (its resource metadata: no secrets)."""
    phase = Phase.RETRYABLE_FAILED if record.ending_phase is Phase.RETRYABLE_FAILED else Phase.FAILED
    reason = record.ending_message or "the task did not end by its bound (execution_timeout + end_within)"
    if record.metadata is None:
        message = f"{reason}; ended by its bound, no job was recorded"
    else:
        delete = "the agent's delete could not be confirmed"
        if record.end_within is not None:
            delete += f" within end_within={record.end_within}s"
        if record.cleanup_attempts:
            attempts = record.cleanup_attempts
            delete += f" after {attempts} attempt{'s' if attempts > 1 else ''}"
        if record.cleanup_error:
            delete += f" (last error: {record.cleanup_error[:_QUOTE_LIMIT]})"
        message = f"{reason}; {delete}: job {record.metadata[:_QUOTE_LIMIT]} may still be running"
    return phase, " ".join(message.split())
