"""Continue as new (#21 item 1) through the deployed template: the agent `chain` (polls_per_execution = 3,
a second between polls) runs a 10-poll job as a chain of executions of its deployed state machine, each
started by the one before from its Continue state with the deployed role; one aborted mid-chain ends
ABORTED with its job deleted once. Every call its functions made is allowed by their deployed policies."""

from __future__ import annotations

import time
from typing import Any

import pytest

from serverless_agents.agent import Phase
from tests.rehearsal.conftest import Deployed
from tests.rehearsal.iam_audit import allowed, role_statements
from tests.rehearsal.lifecycle import WAIT_SECONDS, create, get, job_record, status_change, wait_for

pytestmark = pytest.mark.functional


def chain(deployed: Deployed, task_id: str) -> list[dict[str, Any]]:
    """The task's executions, described, first to last (the n-th is named `<task id>_c<n>`)."""
    sfn = deployed.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=deployed.stack.outputs["StateMachineArnChain"])["executions"]
    names = {e["name"]: e["executionArn"] for e in listed if str(e["name"]).startswith(task_id)}
    order = [task_id, *(f"{task_id}_c{n}" for n in range(2, len(names) + 1))]
    assert set(order) == set(names), sorted(names)
    return [dict(sfn.describe_execution(executionArn=names[name])) for name in order]


def settled(deployed: Deployed, task_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        executions = chain(deployed, task_id)
        if all(e["status"] != "RUNNING" for e in executions):
            return executions
        assert time.monotonic() < deadline, f"an execution of {task_id} still runs"
        time.sleep(0.2)


def test_a_ten_poll_job_succeeds_through_a_chain_of_deployed_executions(deployed: Deployed) -> None:
    task_id = create(deployed, "example_job_chain", "chain-ok", {"polls": 10})

    resource = wait_for(deployed, task_id, Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    executions = settled(deployed, task_id)
    assert [e["status"] for e in executions] == ["SUCCEEDED"] * 4
    assert resource.custom_info["execution_arn"] == executions[-1]["executionArn"]
    assert job_record(deployed, task_id)["gets"] == 10
    assert job_record(deployed, task_id)["deletes"] == 0


def test_a_task_aborted_mid_chain_ends_aborted_with_one_delete(deployed: Deployed) -> None:
    task_id = create(deployed, "example_job_chain", "chain-abort", {"polls": 1_000_000})
    deadline = time.monotonic() + WAIT_SECONDS
    while len(chain(deployed, task_id)) < 2:
        assert time.monotonic() < deadline, "the chain did not continue"
        time.sleep(0.2)

    assert deployed.api.request("DELETE", f"/v1/tasks/{task_id}").status == 200
    # EventBridge delivers the status change of every execution that ended other than SUCCEEDED.
    for described in settled(deployed, task_id):
        if described["status"] != "SUCCEEDED":
            assert deployed.events.deliver(status_change(described))

    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED
    assert job_record(deployed, task_id)["deletes"] == 1


def test_every_call_of_the_chains_functions_is_allowed_by_their_deployed_policies(deployed: Deployed) -> None:
    calls = [c for c in deployed.calls.calls if c.function.startswith("rehearsal-chain-")]
    assert {c.function for c in calls} >= {f"rehearsal-chain-{role}" for role in ("create", "get", "delete")}
    iam, lambdas = deployed.client("iam"), deployed.client("lambda")
    statements = {f: role_statements(iam, lambdas, f) for f in {c.function for c in calls}}

    assert [c for c in calls if not allowed(statements[c.function], c)] == []
