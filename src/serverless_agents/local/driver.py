"""What EventBridge would do locally: turn Step Functions executions' endings into status-change events.

moto emits no "Step Functions Execution Status Change" events, so this driver watches the executions of
the deployment's state machines and, for each that ends ABORTED, TIMED_OUT or FAILED, invokes the finalize
function with the event EventBridge would have delivered (the same shape as tests/events/).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from serverless_agents.local.periodic import Periodic
from serverless_agents.runtime.sweeper import ended_executions, status_change_event

logger = logging.getLogger(__name__)


class StatusChangeDriver:
    def __init__(
        self,
        sfn_client: Any,
        lambda_client: Any,
        state_machine_arns: Iterable[str],
        finalize_function: str,
        *,
        interval: float = 0.2,
    ) -> None:
        self._sfn = sfn_client
        self._lambda = lambda_client
        self._state_machines = list(state_machine_arns)
        self._finalize = finalize_function
        self._delivered: set[str] = set()
        self._loop = Periodic("status-change-driver", interval, self.deliver_pending)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def deliver_pending(self) -> int:
        """Deliver an event for every watched ending not yet delivered; returns how many were sent."""
        pending = [
            summary["executionArn"]
            for summary in ended_executions(self._sfn, self._state_machines)
            if summary["executionArn"] not in self._delivered
        ]
        for execution_arn in pending:
            self._deliver(execution_arn)
        return len(pending)

    def _deliver(self, execution_arn: str) -> None:
        event = status_change_event(self._sfn.describe_execution(executionArn=execution_arn))
        response = self._lambda.invoke(FunctionName=self._finalize, Payload=json.dumps(event).encode())
        answer = response["Payload"].read()
        if response.get("FunctionError"):
            # EventBridge retries a failed delivery; so do we, on the next round.
            logger.warning("finalize failed for %s: %s", execution_arn, answer[:500])
            return
        self._delivered.add(execution_arn)
