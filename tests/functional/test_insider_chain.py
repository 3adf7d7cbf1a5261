"""Continue as new (#21 item 1): a task outlives one execution's 25,000-event history.

On the embedded stack (the real ASL on moto, the real handlers): an agent with `polls_per_execution = 3`
runs a 10-poll job as a chain of executions, each started by the one before from its Continue state
(Step Functions' startExecution integration); everything that acts on the task follows the chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_agents.agent import Phase
from serverless_agents.flyte.literals import decode_literal_map
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.sensors import wait_for

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-chain"

[agents.chainjob]
class = "tests.functional.agents:ChainJobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }
polls_per_execution = 3

[agents.slowchain]
class = "tests.functional.agents:ChainTimeoutJobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }
polls_per_execution = 1
execution_timeout = 3
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


def chain(harness: Harness, agent: str, task_id: str) -> list[dict[str, object]]:
    """The task's executions, in the chain's order (every execution of a task starts with its id)."""
    executions = [e for e in harness.executions(agent) if str(e["name"]).startswith(task_id)]
    # The first is named after the task, the n-th `<task id>_c<n>` (naming.chain_execution_name).
    order = {task_id: 1} | {f"{task_id}_c{n}": n for n in range(2, len(executions) + 1)}
    assert set(order) == {e["name"] for e in executions}, [e["name"] for e in executions]
    return sorted(executions, key=lambda e: order[str(e["name"])])


def test_a_ten_poll_job_runs_as_a_chain_of_executions_and_ends_succeeded_with_its_outputs(
    harness: Harness,
) -> None:
    request = harness.request("example_job_chain", custom={"polls": 10})
    task_id = harness.submit(request)

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    outputs = decode_literal_map(resource.outputs, request.template.interface.outputs.variables)
    assert outputs == {"n": 1, "polls": 10}
    # Polls 1-3, 4-6 and 7-9 in the first three executions, the 10th (which sees the job done) in a fourth.
    wait_for(lambda: all(e["status"] != "RUNNING" for e in chain(harness, "chainjob", task_id)))
    executions = chain(harness, "chainjob", task_id)
    assert [e["status"] for e in executions] == ["SUCCEEDED"] * 4
    item = harness.item(task_id)
    assert item["execution_arn"]["S"] == executions[-1]["executionArn"]
    # GetTask links the current execution and the earlier ones.
    links = {link.uri for link in resource.log_links}
    assert all(any(str(e["executionArn"]) in uri for uri in links) for e in executions)
    assert resource.custom_info["execution_arn"] == executions[-1]["executionArn"]
    assert harness.job(task_id)["gets"] == 10
    assert harness.job(task_id)["deletes"] == 0
    # A continued execution ended SUCCEEDED, no ending of the task: the sweeper finds nothing to finalize.
    sweeper = f"{harness.stack.deployment}-sweeper"
    swept = json.loads(
        harness.stack.client("lambda").invoke(FunctionName=sweeper, Payload=b"{}")["Payload"].read()
    )
    assert (swept["deleted"], swept["ended"]) == (0, 0)
    assert harness.job(task_id)["deletes"] == 0
    assert Phase(harness.api.get_task(task_id).resource.phase) is Phase.SUCCEEDED


def test_a_task_aborted_mid_chain_ends_aborted_and_its_job_is_deleted_once(harness: Harness) -> None:
    task_id = harness.submit(harness.request("example_job_chain", custom={"polls": 100_000}))
    # Abort once the chain has moved on: the task's current execution is not its first.
    wait_for(lambda: len(chain(harness, "chainjob", task_id)) >= 3)

    harness.api.delete_task(task_id)
    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.ABORTED, resource.message
    wait_for(lambda: all(e["status"] != "RUNNING" for e in chain(harness, "chainjob", task_id)))
    executions = chain(harness, "chainjob", task_id)
    assert "ABORTED" in {e["status"] for e in executions} or executions[-1]["status"] == "FAILED"
    assert harness.job(task_id)["deletes"] == 1
    gets = harness.job(task_id)["gets"]
    harness.api.delete_task(task_id)  # Flyte's delete is repeated: nothing more happens
    assert harness.job(task_id)["deletes"] == 1
    assert harness.job(task_id)["gets"] == gets


def test_execution_timeout_counts_from_the_tasks_start_across_the_chain(harness: Harness) -> None:
    """Each execution polls once (1 s) and continues, so none reaches the 3 s timeout on its own; the
    task does, and its job is deleted."""
    task_id = harness.submit(harness.request("example_job_chain_timeout", custom={"polls": 100_000}))

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "timed out" in resource.message
    assert "execution_timeout" in resource.message
    wait_for(lambda: all(e["status"] != "RUNNING" for e in chain(harness, "slowchain", task_id)))
    assert len(chain(harness, "slowchain", task_id)) >= 2
    assert harness.job(task_id)["deletes"] == 1
