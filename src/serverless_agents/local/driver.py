"""What EventBridge would do locally: turn Step Functions executions' endings into status-change events,
and run the sweeper on its schedule.

moto emits no "Step Functions Execution Status Change" events, so this driver watches the executions of
the deployment's state machines and, for each that ends ABORTED, TIMED_OUT or FAILED, invokes the finalize
function with the event EventBridge would have delivered (the same shape as tests/events/). A delivery
that fails (the agent's delete failed) is tried again with exponential backoff, not on every round, as
Lambda retries an asynchronous invocation: a delete that keeps failing costs a few calls a minute, and the
sweeper ends its task once the task's bound has passed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serverless_agents.local.lambda_dispatch import error_line
from serverless_agents.local.periodic import Periodic
from serverless_agents.runtime.sweeper import ended_executions, status_change_event

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_stepfunctions import SFNClient

logger = logging.getLogger(__name__)

#: Seconds before the first retry of a failed delivery; each failure doubles it, up to `RETRY_CAP`.
RETRY_BASE = 1.0
RETRY_CAP = 60.0


@dataclass
class _Retry:
    failures: int
    not_before: float


class StatusChangeDriver:
    """`sweeper_function`, when given, is invoked every `sweep_interval` seconds, as the schedule would.
    `clock` (monotonic seconds) is what retries and sweeps are timed by."""

    def __init__(
        self,
        sfn_client: SFNClient,
        lambda_client: LambdaClient,
        state_machine_arns: Iterable[str],
        finalize_function: str,
        *,
        interval: float = 0.2,
        sweeper_function: str | None = None,
        sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sfn = sfn_client
        self._lambda = lambda_client
        self._state_machines = list(state_machine_arns)
        self._finalize = finalize_function
        self._sweeper = sweeper_function
        self._sweep_interval = sweep_interval
        self._clock = clock
        self._next_sweep = clock() + sweep_interval
        self._delivered: set[str] = set()
        self._retries: dict[str, _Retry] = {}
        self._loop = Periodic("status-change-driver", interval, self.step)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def step(self) -> None:
        self.deliver_pending()
        if self._sweeper is not None and self._clock() >= self._next_sweep:
            self._next_sweep = self._clock() + self._sweep_interval
            self.sweep()

    def deliver_pending(self) -> int:
        """Deliver an event for every watched ending not yet delivered and not backing off; returns how
        many were sent."""
        now = self._clock()
        pending = [
            summary["executionArn"]
            for summary in ended_executions(self._sfn, self._state_machines)
            if summary["executionArn"] not in self._delivered
            and self._retries.get(summary["executionArn"], _Retry(0, now)).not_before <= now
        ]
        for execution_arn in pending:
            self._deliver(execution_arn)
        return len(pending)

    def sweep(self) -> dict[str, Any]:
        """Invoke the sweeper once; its answer (a failed sweep is logged, the next one tries again)."""
        assert self._sweeper is not None
        answer = self._invoke(self._sweeper, {"source": "aws.events", "detail-type": "Scheduled Event"})
        if answer is None:
            return {}
        return dict(answer)

    def _deliver(self, execution_arn: str) -> None:
        event = status_change_event(self._sfn.describe_execution(executionArn=execution_arn))
        if self._invoke(self._finalize, event) is None:
            retry = self._retries.get(execution_arn, _Retry(0, 0.0))
            delay = min(RETRY_CAP, RETRY_BASE * 2**retry.failures)
            self._retries[execution_arn] = _Retry(retry.failures + 1, self._clock() + delay)
            return
        self._retries.pop(execution_arn, None)
        self._delivered.add(execution_arn)

    def _invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Invoke and return the answer, or None if the function failed (logged)."""
        response = self._lambda.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        answer = response["Payload"].read()
        if response.get("FunctionError"):
            logger.warning("%s failed: %s", function, error_line(answer))
            return None
        return json.loads(answer or b"null")
