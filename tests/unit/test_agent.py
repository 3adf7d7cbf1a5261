"""The SDK's small pieces: phases, plain and async methods, the task context."""

from __future__ import annotations

import asyncio

import pytest
from flyteidl.core import literals_pb2, tasks_pb2, types_pb2

from serverless_agents.agent import Phase, TaskContext, resolve
from serverless_agents.testing import task_request


def test_terminal_phases_are_the_ones_flyte_stops_polling_on() -> None:
    assert {p for p in Phase if p.is_terminal} == {
        Phase.SUCCEEDED,
        Phase.FAILED,
        Phase.ABORTED,
        Phase.RETRYABLE_FAILED,
    }


def test_phase_values_are_flyteidl_task_execution_phases() -> None:
    from flyteidl.core.execution_pb2 import TaskExecution

    assert {p.name: p.value for p in Phase} == dict(TaskExecution.Phase.items())


def test_resolve_runs_plain_and_async_results() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert resolve(answer()) == 42
    assert resolve(7) == 7


def test_task_context_exposes_custom_as_a_dict_and_keeps_raw_literals() -> None:
    template = tasks_pb2.TaskTemplate(type="t")
    template.custom.update({"sql": "select 1", "n": 2})
    raw = literals_pb2.LiteralMap()

    task = TaskContext(task_id="x", template=template, inputs={}, literals=raw)

    assert task.custom == {"sql": "select 1", "n": 2.0}
    assert task.task_type == "t"
    assert task.literals is raw
    assert TaskContext(task_id="x", template=tasks_pb2.TaskTemplate(), inputs={}, literals=raw).custom == {}


def test_task_request_takes_output_types_as_the_test_client_does() -> None:
    # One convention in serverless_agents.testing: inputs are values, outputs are types.
    request = task_request("t", {"n": 1, "text": "x"}, {"square": int, "ok": bool})
    outputs = request.template.interface.outputs.variables
    assert {name: v.type.simple for name, v in outputs.items()} == {
        "square": types_pb2.INTEGER,
        "ok": types_pb2.BOOLEAN,
    }
    with pytest.raises(
        TypeError, match=r"'square': expected one of int, float, str, bool \(a type, not a value\)"
    ):
        task_request("t", {}, {"square": 0})  # type: ignore[dict-item]
