"""The sweeper's loop, with in-memory fakes of Step Functions and Lambda: one ending that cannot be
finalized does not keep the others from it, and the sweep still reports the failure."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serverless_agents.exceptions import ServiceUnavailable
from serverless_agents.runtime.sweeper import sweep

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sa-job"


class FakeStepFunctions:
    def __init__(self, endings: dict[str, datetime]) -> None:
        self.endings = endings

    def get_paginator(self, name: str) -> FakeStepFunctions:
        assert name == "list_executions"
        return self

    def paginate(self, stateMachineArn: str, statusFilter: str) -> list[dict[str, Any]]:
        if statusFilter != "ABORTED":
            return [{"executions": []}]
        newest_first = sorted(self.endings.items(), key=lambda item: item[1], reverse=True)
        return [{"executions": [self._summary(name, stopped) for name, stopped in newest_first]}]

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        name = executionArn.rsplit(":", 1)[-1]
        return {
            **self._summary(name, self.endings[name]),
            "input": json.dumps({"task_id": name, "agent": "job"}),
        }

    @staticmethod
    def _summary(name: str, stopped: datetime) -> dict[str, Any]:
        arn = f"{ARN.replace(':stateMachine:', ':execution:')}:{name}"
        return {
            "executionArn": arn,
            "stateMachineArn": ARN,
            "name": name,
            "status": "ABORTED",
            "stopDate": stopped,
        }


class FakeLambda:
    """The delete functions: fails for the task ids in `failing`, else reports a delete."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.invoked: list[str] = []

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
        task_id = json.loads(Payload)["task_id"]
        self.invoked.append(task_id)
        if task_id in self.failing:
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorMessage": "boom"}')}
        return {"Payload": io.BytesIO(b'{"deleted": true}')}


def test_sweeps_every_ending_in_the_window_and_only_those() -> None:
    now = datetime.now(UTC)
    sfn = FakeStepFunctions({"t1": now, "t2": now - timedelta(minutes=30), "old": now - timedelta(hours=3)})
    lambdas = FakeLambda(failing=set())

    result = sweep([ARN], "sa", timedelta(hours=1), sfn_client=sfn, lambda_client=lambdas)

    assert result == {"seen": 2, "deleted": 2}
    assert lambdas.invoked == ["t1", "t2"]


def test_one_failing_ending_does_not_stop_the_others() -> None:
    now = datetime.now(UTC)
    sfn = FakeStepFunctions({"t1": now, "t2": now - timedelta(minutes=1), "t3": now - timedelta(minutes=2)})
    lambdas = FakeLambda(failing={"t1"})

    with pytest.raises(ServiceUnavailable, match=r"1 of 3 endings not finalized: t1: "):
        sweep([ARN], "sa", timedelta(hours=1), sfn_client=sfn, lambda_client=lambdas)

    assert lambdas.invoked == ["t1", "t2", "t3"]
