"""Fixes to moto's Step Functions that the embedded stack needs, for the pinned moto only.

StopExecution right after StartExecution (Flyte aborting a task it just created) raises AttributeError in moto
5.2.5: the execution's worker thread sets its environment only once it has parsed the definition, and
`ExecutionWorker.stop` reads it at once. On AWS the call succeeds; here it would be a 500. The fix waits,
briefly and boundedly, for the environment before stopping.
"""

from __future__ import annotations

import time
from typing import Any

_WAIT_SECONDS = 5.0
_installed = False


def install() -> None:
    """Idempotent; `lambda_dispatch.InProcessLambdas.install` checks the moto version this is written for."""
    global _installed
    if _installed:
        return
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.stop

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + _WAIT_SECONDS
        while self.env is None and time.monotonic() < deadline:
            time.sleep(0.01)
        original(self, stop_date, error, cause)

    ExecutionWorker.stop = stop  # type: ignore[method-assign]
    _installed = True
