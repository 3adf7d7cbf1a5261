"""Fixes to moto that the embedded stack needs, for the pinned moto only.

DynamoDB item writes are atomic and isolated on AWS: a conditional write checks and writes as one step, and a
read sees an item before or after a write, never half-way. moto 5.2.5 checks the condition and then applies
the update expression attribute by attribute, in place, with no lock, so with the stack's threads (each
function's container, the HTTP API's requests, the status-change driver) a reader could see a half-written
ending (phase SUCCEEDED, message still "waiting for the condition") and two writers could both pass one
condition. The fix runs each DynamoDB request (parse, check, apply, serialize) under one lock.

StopExecution right after StartExecution (Flyte aborting a task it just created) raises AttributeError in moto
5.2.5: the execution's worker thread sets its environment only once it has parsed the definition, and
`ExecutionWorker.stop` reads it at once. On AWS the call succeeds; here it would be a 500. The fix waits,
briefly and boundedly, for the environment before stopping.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_WAIT_SECONDS = 5.0
_installed = False
_DYNAMODB = threading.RLock()


def install() -> None:
    """Idempotent; `lambda_dispatch.InProcessLambdas.install` checks the moto version this is written for."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    request = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB:
            return request(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    original = ExecutionWorker.stop

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + _WAIT_SECONDS
        while self.env is None and time.monotonic() < deadline:
            time.sleep(0.01)
        original(self, stop_date, error, cause)

    ExecutionWorker.stop = stop  # type: ignore[method-assign]
    _installed = True
