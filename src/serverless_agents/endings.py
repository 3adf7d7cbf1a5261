"""How an execution that ended without passing its Cleanup state ends its task: one table for all who care.

StopExecution (ABORTED) and the state machine's TimeoutSeconds (TIMED_OUT) skip every remaining state, and
a FAILED execution may have failed past Cleanup. For these statuses the agent's delete runs from outside:
the status-change rule (infra/cdk `Finalizer`) routes their events to finalize (`runtime.finalize`), which
ends the task with the phase and message below, and the sweeper (`runtime.sweeper`) lists executions in
the same statuses to finalize those whose event was lost. Any other status is not an ending of this kind.

The error names the state machine retries, and so the phase of a task whose retries ran out, are in
`failures` (`TRANSIENT_ERROR_NAMES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from serverless_agents.agent import Phase


@dataclass(frozen=True)
class ExecutionEnding:
    """The phase a task ends in, and its message, formatted with the execution's `error` and `cause`."""

    phase: Phase
    template: str

    def message(self, error: str | None, cause: str | None) -> str:
        return self.template.format(error=error or "", cause=cause or "").rstrip(": ")


#: Step Functions execution status -> how the task ends.
EXECUTION_ENDINGS = MappingProxyType(
    {
        "ABORTED": ExecutionEnding(Phase.ABORTED, "aborted (DeleteTask or StopExecution): {cause}"),
        "TIMED_OUT": ExecutionEnding(Phase.FAILED, "timed out: the task ran past its execution_timeout"),
        "FAILED": ExecutionEnding(Phase.FAILED, "failed: {error}: {cause}"),
    }
)
#: The statuses the status-change rule matches, finalize handles and the sweeper lists.
ENDED_STATUSES: tuple[str, ...] = tuple(EXECUTION_ENDINGS)
#: The envelope of the event EventBridge sends when an execution's status changes: the status-change
#: rule's pattern (`plan.status_change_rule`) and the events the sweeper and the local driver make.
STATUS_CHANGE_SOURCE = "aws.states"
STATUS_CHANGE_DETAIL_TYPE = "Step Functions Execution Status Change"
