"""Task identity: one stable id per Flyte task attempt, valid as a Step Functions execution name."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flyteidl.core.identifier_pb2 import (
    Identifier,
    NodeExecutionIdentifier,
    TaskExecutionIdentifier,
    WorkflowExecutionIdentifier,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_agents.exceptions import InvalidRequest
from serverless_agents.flyte.identity import AGENT_NAME, agent_key_prefix, check_task_id, task_id_for

# propeller's output prefix: `<node data dir>/<retry attempt>`
# (flytepropeller/pkg/controller/nodes/task/handler.go).
PREFIX = "s3://my-flyte-bucket/metadata/propeller/flytesnacks-development-f6a2b9c/n0/data/0"
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
AGENT = "bigquery"


def execution_id(
    *, name: str = "f6a2b9c", node: str = "n0", version: str = "v1", attempt: int = 0
) -> TaskExecutionIdentifier:
    return TaskExecutionIdentifier(
        task_id=Identifier(project="flytesnacks", domain="development", name="wf.query", version=version),
        node_execution_id=NodeExecutionIdentifier(
            node_id=node,
            execution_id=WorkflowExecutionIdentifier(project="flytesnacks", domain="development", name=name),
        ),
        retry_attempt=attempt,
    )


def test_task_id_is_a_pure_function_of_the_identifier() -> None:
    task_id = task_id_for(AGENT, execution_id(), PREFIX)

    assert task_id == task_id_for(AGENT, execution_id(), PREFIX)
    assert task_id.startswith("bigquery_f6a2b9c-n0-a0-")
    assert check_task_id(task_id) == task_id


@pytest.mark.parametrize(
    "change",
    [
        lambda e: setattr(e, "retry_attempt", 1),
        lambda e: setattr(e.node_execution_id, "node_id", "n1"),
        lambda e: setattr(e.node_execution_id.execution_id, "name", "other"),
        lambda e: setattr(e.node_execution_id.execution_id, "project", "other"),
        lambda e: setattr(e.task_id, "version", "v2"),
        lambda e: setattr(e.task_id, "name", "wf.other"),
    ],
    ids=["retry-attempt", "node", "execution", "project", "task-version", "task-name"],
)
def test_task_id_differs_for_another_attempt_node_execution_or_task(
    change: Callable[[TaskExecutionIdentifier], None],
) -> None:
    changed = execution_id()
    change(changed)

    assert task_id_for(AGENT, changed, PREFIX) != task_id_for(AGENT, execution_id(), PREFIX)


def test_unsafe_characters_that_read_alike_still_give_distinct_ids() -> None:
    assert task_id_for(AGENT, execution_id(name="a b"), PREFIX) != task_id_for(
        AGENT, execution_id(name="a/b"), PREFIX
    )


@pytest.mark.parametrize(
    ("name", "node"),
    [
        ("x" * 300, "n" * 300),
        ("my workflow: run #1 / 100%", "node with spaces"),
        ("exécution-überlang-名前-" * 10, "узел\t\n"),
        ("~`$&,;:/\\\"'[]{}<>", "|^#"),
    ],
    ids=["long", "spaces", "unicode", "punctuation"],
)
@pytest.mark.parametrize("agent", [AGENT, "a", "a" + "-9" * 14 + "z"], ids=["short", "one", "longest"])
def test_task_id_is_a_valid_execution_name(name: str, node: str, agent: str) -> None:
    task_id = task_id_for(agent, execution_id(name=name, node=node, attempt=2**32 - 1), PREFIX)

    assert EXECUTION_NAME.fullmatch(task_id), task_id
    assert len(task_id) <= 80
    assert task_id.startswith(agent_key_prefix(agent))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.from_regex(AGENT_NAME, fullmatch=True),
    st.from_regex(AGENT_NAME, fullmatch=True),
    st.text(max_size=60),
    st.text(max_size=60),
)
def test_an_agents_key_prefix_starts_its_own_ids_and_no_other_agents(
    agent: str, other: str, name: str, node: str
) -> None:
    """IAM scopes each agent's table items by `<agent>_*` (dynamodb:LeadingKeys): `etl_` must not start
    the ids of `etl-nightly`, nor of any other agent, whatever the names in the execution."""
    task_id = task_id_for(other, execution_id(name=name or "x", node=node or "n"), PREFIX)

    assert check_task_id(task_id) == task_id
    assert task_id.startswith(agent_key_prefix(agent)) == (agent == other)


def test_a_name_that_is_not_an_agents_makes_no_key_prefix() -> None:
    with pytest.raises(InvalidRequest):
        agent_key_prefix("etl_nightly")


@pytest.mark.parametrize(("name", "node"), [("", "n0"), ("f6a2b9c", "")])
def test_a_task_without_execution_name_or_node_is_invalid(name: str, node: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        task_id_for(AGENT, execution_id(name=name, node=node), PREFIX)
    assert caught.value.field == "taskExecutionMetadata.taskExecutionId"


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 81, "é", "../etc"])
def test_check_task_id_rejects_what_is_not_a_task_id(bad: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_task_id(bad)
    assert caught.value.field == "task_id"


def test_check_task_id_rejects_a_trailing_newline() -> None:
    with pytest.raises(InvalidRequest):
        check_task_id("abc\n")


def test_two_node_executions_sharing_an_identifier_get_two_ids() -> None:
    # A subworkflow called twice sends the same TaskExecutionIdentifier for both calls (its node id is local
    # to the subworkflow: flytepropeller/pkg/controller/nodes/node_exec_context.go); their data dirs differ.
    first = task_id_for(
        AGENT, execution_id(), "s3://b/metadata/propeller/p-d-f6a2b9c/n0/data/0/sub-n0/data/0"
    )
    second = task_id_for(
        AGENT, execution_id(), "s3://b/metadata/propeller/p-d-f6a2b9c/n1/data/0/sub-n0/data/0"
    )

    assert first != second
    assert first == task_id_for(
        AGENT, execution_id(), "s3://b/metadata/propeller/p-d-f6a2b9c/n0/data/0/sub-n0/data/0"
    )
