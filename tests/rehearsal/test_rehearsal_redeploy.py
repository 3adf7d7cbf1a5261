"""A redeploy mid-task (#21 item 3): tasks started under version N of an agent's code and state machine
finish under version N+1, through the deployed resources.

A stack of its own (`redeploy`, beside the package's `rehearsal` stack in the same moto) is deployed from
version N's manifest, two tasks are started (jobs of many polls, a second between them), and once each has
polled under version N the stack is updated with CloudFormation's UpdateStack to version N+1's template:
new function code (the agent's class; its metadata has a new field with a default), a faster poll backoff
and a lower `polls_per_execution` (the get function's bundled manifest), and a changed state machine
definition (`execution_timeout`). The tasks end SUCCEEDED with their outputs, their later gets run by the
new code, which reads the metadata version N stored; each task's first execution, started on the old
definition, ran a get of the new code (which continued it as a new execution, on the new definition).

Where moto's CloudFormation updates (tests/rehearsal/cfn_shims.py): the functions' code and
configuration, and the state machine (UpdateStateMachine; a running execution keeps its definition, as on
AWS, and the next execution of the chain starts on the new one). Where it does not: a SnapStart function's
alias and versions (moto has no CloudFormation model for `AWS::Lambda::Alias`), so the template is checked
instead: every function a state machine invokes is named by the alias's ARN (`Ref` of the alias: qualified by
the alias name, never by a version), and the alias moves to the new version on the deploy, so an
execution started on the old definition reaches the new code.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.agent import Phase
from serverless_agents.deployment.evolution import lock_path
from serverless_agents.deployment.naming import SNAPSTART_ALIAS
from tests.infra.conftest import Synth, synthesize
from tests.rehearsal.conftest import Deployed
from tests.rehearsal.deployment import (
    ApiGateway,
    code_of_each_function,
    create_stack,
    described_stack,
    publish_assets,
    update_stack,
)
from tests.rehearsal.iam_audit import allowed, role_statements
from tests.rehearsal.lifecycle import WAIT_SECONDS, create, get, job_record, wait_for

pytestmark = pytest.mark.functional

NAME = "redeploy"
TASK_TYPE = "rehearsal_redeploy"
ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED)


def manifest(version: int, *, snapstart: bool = False) -> str:
    """Version 1 or 2 of one agent: its code, poll backoff, polls_per_execution and execution_timeout
    change. Under version 1 no task continues (100 polls per execution); version 2's get continues a task
    after 3: so a task with a second execution had a get of version 2's code run by its first execution,
    started on version 1's definition."""
    wait = 1 if version == 1 else 0
    polls_per_execution = 100 if version == 1 else 3
    return f"""[deployment]
name = "{NAME}"

[agents.job]
class = "tests.rehearsal.agents:RedeployJobV{version}"
poll = {{ initial = {wait}, factor = 1.0, cap = {wait} }}
polls_per_execution = {polls_per_execution}
execution_timeout = {3600 * version}
snapstart = {str(snapstart).lower()}
"""


def synthesize_versions(root: Path, *, snapstart: bool = False) -> tuple[Synth, Synth]:
    """Both versions, synthesized as an operator's two `cdk deploy`s would: the second beside the lock
    the first wrote (committed with the manifest), so the deploy-time metadata check runs on it."""
    before = synthesize(manifest(1, snapstart=snapstart), root / "v1")
    (root / "v2").mkdir()
    shutil.copy(lock_path(root / "v1" / "agents.toml"), lock_path(root / "v2" / "agents.toml"))
    after = synthesize(manifest(2, snapstart=snapstart), root / "v2")
    return before, after


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synth, Synth]:
    return synthesize_versions(tmp_path_factory.mktemp("redeploy"))


def started(deployed: Deployed, task_id: str) -> bool:
    try:
        return bool(job_record(deployed, task_id).get("gets_by_code", {}).get("v1"))
    except KeyError:  # no metadata yet: create has not returned
        return False


def test_tasks_started_before_a_redeploy_finish_after_it_on_the_new_code(
    deployed: Deployed, versions: tuple[Synth, Synth]
) -> None:
    before, after = versions
    cloudformation, s3 = deployed.client("cloudformation"), deployed.client("s3")
    roots = publish_assets(before.outdir, s3)
    with code_of_each_function(deployed.lambdas, roots) as ran:
        stack = create_stack(cloudformation, before.json, name=NAME)
        api = ApiGateway(deployed.client("apigateway"), deployed.client("lambda"), stack.outputs["ApiUrl"])
        here = replace(deployed, synth=before, stack=stack, api=api)
        polls = {"redeploy-a": 7, "redeploy-b": 9}
        tasks = {name: create(here, TASK_TYPE, name, {"polls": n}) for name, n in polls.items()}
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(started(here, task_id) for task_id in tasks.values()):
            assert time.monotonic() < deadline, "the tasks did not poll under version 1"
            time.sleep(0.1)

        roots.update(publish_assets(after.outdir, s3))  # `cdk deploy` publishes, then updates the stack
        deployed_at = time.time()
        updated = update_stack(cloudformation, after.json, name=NAME)
        here = replace(here, synth=after, stack=updated)

        ended = {name: wait_for(here, task_id, *ENDED) for name, task_id in tasks.items()}

    assert updated.resources == stack.resources  # the same resources, updated in place
    new_code = set(publish_assets(after.outdir, s3).values())
    for name, task_id in tasks.items():
        resource = ended[name]
        assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
        outputs = {k: v.scalar.primitive.integer for k, v in resource.outputs.literals.items()}
        assert outputs == {"n": 3, "polls": polls[name]}
        # The last get ran version 2's code, reading the metadata version 1 stored (no code_version:
        # the new field's default).
        assert resource.custom_info["code"] == "v2"
        assert resource.custom_info["metadata_code_version"] == 1
        gets = job_record(here, task_id)["gets_by_code"]
        assert gets["v1"] >= 1, gets
        assert gets["v2"] >= 1, gets
        assert gets["v1"] + gets["v2"] == polls[name], gets
    # Every invocation after the update ran the new code: none of version 1's once version 2's began.
    folders = [root for _, root in ran]
    first_new = min(i for i, root in enumerate(folders) if root in new_code)
    assert all(root in new_code for root in folders[first_new:])
    # Each task's first execution, started on version 1's definition, reached version 2's get (which
    # continued it: version 1's never does), and its successors ran on version 2's definition.
    sfn = deployed.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=updated.outputs["StateMachineArnJob"])["executions"]
    for task_id in tasks.values():
        own = (e for e in listed if str(e["name"]).startswith(task_id))
        chain = sorted(own, key=lambda e: e["startDate"])
        assert chain[0]["name"] == task_id
        assert chain[0]["startDate"].timestamp() < deployed_at
        assert len(chain) >= 2, chain
        assert all(e["startDate"].timestamp() > deployed_at for e in chain[1:])
    # The state machine now has version 2's definition.
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=updated.outputs["StateMachineArnJob"])["definition"]
    )
    assert definition["TimeoutSeconds"] == 7200
    # The version 2 lock records the new field (the synth wrote it).
    lock = json.loads(lock_path(after.outdir.parent / "agents.toml").read_text())
    assert "code_version" in lock["agents"]["job"]["properties"]


def test_every_call_of_the_redeployed_functions_is_allowed_by_their_deployed_policies(
    deployed: Deployed,
) -> None:
    calls = [c for c in deployed.calls.calls if c.function.startswith(f"{NAME}-")]
    assert {c.function for c in calls} >= {f"{NAME}-job-{role}" for role in ("create", "get")}
    iam, lambdas = deployed.client("iam"), deployed.client("lambda")
    statements = {f: role_statements(iam, lambdas, f) for f in {c.function for c in calls}}

    assert [c for c in calls if not allowed(statements[c.function], c)] == []


def invoked_functions(template: dict[str, Any]) -> list[str]:
    """The Lambda resources (logical ids) the state machine's definition names, by `Ref` or `Fn::GetAtt`."""
    (machine,) = (
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Ref" in value:
                found.append(value["Ref"])
            elif "Fn::GetAtt" in value:
                found.append(value["Fn::GetAtt"][0])
            else:
                for item in value.values():
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(machine["Properties"]["DefinitionString"])
    kinds = {"AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Version"}
    return sorted({f for f in found if template["Resources"].get(f, {}).get("Type") in kinds})


def test_a_snapstart_agents_state_machine_invokes_its_functions_through_the_alias_that_moves(
    tmp_path: Path,
) -> None:
    """Where the rehearsal cannot update (SnapStart's versions and alias), the templates say it: the
    state machine names each function by its alias (qualified by the alias name, which CloudFormation
    keeps, not by a version, which the deploy replaces), and the deploy points the alias at the new
    version, so an execution started on the old definition reaches the new code."""
    before, after = synthesize_versions(tmp_path, snapstart=True)
    aliases = []
    for synth in (before, after):
        resources = synth.json["Resources"]
        named = invoked_functions(synth.json)
        assert len(named) == 3, named  # create, get, delete
        for alias in named:
            assert resources[alias]["Type"] == "AWS::Lambda::Alias", alias
            assert resources[alias]["Properties"]["Name"] == SNAPSTART_ALIAS
        aliases.append({a: resources[a]["Properties"]["FunctionVersion"] for a in named})
    # The same aliases (logical ids) in both templates, each pointed at a new version.
    old, new = aliases
    assert old.keys() == new.keys()
    assert all(old[a] != new[a] for a in old), (old, new)


def test_a_record_with_only_the_first_attributes_reads_through_the_redeployed_api(deployed: Deployed) -> None:
    """The tasks table's records stay compatible: a record holding only the attributes every version has
    written (id, agent, kind, phase, times, version) reads through the redeployed api function, every
    attribute added since taking its default."""
    stack = described_stack(deployed.client("cloudformation"), NAME, "UPDATE_COMPLETE")
    api = ApiGateway(deployed.client("apigateway"), deployed.client("lambda"), stack.outputs["ApiUrl"])
    now = str(time.time())
    deployed.client("dynamodb").put_item(
        TableName=stack.outputs["TasksTableName"],
        Item={
            "id": {"S": "redeploy-oldest-record"},
            "agent": {"S": "job"},
            "kind": {"S": "async"},
            "phase": {"S": "RUNNING"},
            "created_at": {"N": now},
            "updated_at": {"N": now},
            "version": {"N": "1"},
        },
    )

    resource = get(replace(deployed, stack=stack, api=api), "redeploy-oldest-record")

    assert Phase(resource.phase) is Phase.RUNNING
    assert resource.message == ""
