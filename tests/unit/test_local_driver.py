"""The local status-change driver on a fake clock: a failing finalize is retried with exponential backoff
(as Lambda retries an asynchronous invocation), not on every round; the sweeper runs on its period."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from serverless_agents.local.driver import RETRY_CAP, StatusChangeDriver
from tests.unit.test_sweeper import ARN, FakeStepFunctions


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeFunctions:
    """finalize fails while `failing`; the sweeper answers its counts. Records when each was invoked."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failing = True
        self.calls: list[tuple[str, float]] = []

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        self.calls.append((FunctionName, self.clock.now))
        if FunctionName == "finalize" and self.failing:
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorMessage": "delete failed"}')}
        answer = {"seen": 0, "deleted": 0, "ended": 0} if FunctionName == "sweeper" else {"deleted": True}
        return {"Payload": io.BytesIO(json.dumps(answer).encode())}

    def times(self, function: str) -> list[float]:
        return [at for name, at in self.calls if name == function]


def run(driver: StatusChangeDriver, clock: Clock, until: float, step: float = 0.2) -> None:
    while clock.now < until:
        driver.step()
        clock.now = round(clock.now + step, 1)


def driver_for(clock: Clock, functions: FakeFunctions, **kwargs: Any) -> StatusChangeDriver:
    sfn = FakeStepFunctions({"t1": ("ABORTED", datetime.now(UTC))})
    return StatusChangeDriver(sfn, functions, [ARN], "finalize", interval=0.2, clock=clock, **kwargs)


def test_a_failing_delivery_is_retried_with_exponential_backoff_then_delivered_once() -> None:
    clock = Clock()
    functions = FakeFunctions(clock)
    driver = driver_for(clock, functions)

    run(driver, clock, until=20)

    assert functions.times("finalize") == [0.0, 1.0, 3.0, 7.0, 15.0]  # not 100 calls in 20 s
    functions.failing = False
    run(driver, clock, until=200)
    assert functions.times("finalize")[5:] == [31.0]  # the next retry, after 16 s; then delivered
    run(driver, clock, until=400)
    assert len(functions.times("finalize")) == 6


def test_the_backoff_is_capped() -> None:
    clock = Clock()
    functions = FakeFunctions(clock)
    driver = driver_for(clock, functions)

    run(driver, clock, until=600, step=1.0)

    gaps = [b - a for a, b in zip(functions.times("finalize"), functions.times("finalize")[1:], strict=False)]
    assert max(gaps) == RETRY_CAP


def test_the_sweeper_runs_every_sweep_interval() -> None:
    clock = Clock()
    functions = FakeFunctions(clock)
    driver = driver_for(clock, functions, sweeper_function="sweeper", sweep_interval=5.0)

    run(driver, clock, until=16)

    assert functions.times("sweeper") == [5.0, 10.0, 15.0]
