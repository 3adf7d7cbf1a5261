"""SnapStart agents on the embedded stack, wired as the CDK app deploys them: each function of an agent with
`snapstart = true` has a published version behind the alias `live`, and every caller invokes the alias
(SnapStart restores snapshots of published versions only; `$LATEST` would always start cold): the state
machine's create / get / delete, each sensor task's schedule and first poke, and finalize's delete.
Both read `plan.FunctionPlan.invocable` / `naming.invocable_name`; the template's side is
tests/infra/test_snapstart.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from serverless_agents.agent import Phase
from serverless_agents.testing import AgentTestClient

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "snap"

[agents.slowjob]
class = "tests.functional.agents:SlowJobAgent"
snapstart = true
poll = { initial = 0, factor = 1.0, cap = 0 }

[agents.files]
class = "serverless_agents.agents.file_sensor:FileSensor"
snapstart = true
"""
FILE_SENSOR = {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest = tmp_path_factory.mktemp("snapstart") / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest) as started:
        yield started


def alias_arn(client: AgentTestClient, function: str) -> str:
    return str(client.stack.client("lambda").get_alias(FunctionName=function, Name="live")["AliasArn"])


def test_the_state_machine_invokes_the_aliases(client: AgentTestClient) -> None:
    sfn = client.stack.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=client.stack.state_machine_arns["slowjob"])["definition"]
    )
    invoked = {
        state["Parameters"]["FunctionName"]
        for state in definition["States"].values()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }

    assert invoked == {alias_arn(client, f"snap-slowjob-{role}") for role in ("create", "get", "delete")}
    result = client.run("example_job_slow", inputs={"polls": 1}, outputs={"polls": int})
    assert result.phase is Phase.SUCCEEDED, result.message


def test_an_abort_is_finalized_through_the_delete_alias(client: AgentTestClient) -> None:
    task_id = client.start("example_job_slow", inputs={"polls": 1_000_000}, outputs={"polls": int})
    deletes = client.stack.lambdas.invocations["snap-slowjob-delete"]

    client.cancel(task_id)
    result = client.wait(task_id)

    assert result.phase is Phase.ABORTED
    # finalize invoked `snap-slowjob-delete:live` (without the alias moto would have refused the call).
    assert client.stack.lambdas.invocations["snap-slowjob-delete"] == deletes + 1


def test_a_sensor_tasks_schedule_and_first_poke_target_the_poke_alias(client: AgentTestClient) -> None:
    pokes = client.stack.lambdas.invocations["snap-files-poke"]
    task_id = client.start("sensor", inputs={"path": "s3://snapbucket/in/x.csv"}, custom=FILE_SENSOR)
    scheduler = client.stack.client("scheduler")
    (schedule,) = scheduler.list_schedules(GroupName="snap-files")["Schedules"]
    target = scheduler.get_schedule(Name=schedule["Name"], GroupName="snap-files")["Target"]

    assert target["Arn"] == alias_arn(client, "snap-files-poke")
    deadline = time.monotonic() + 30
    while client.stack.lambdas.invocations["snap-files-poke"] == pokes:  # the first poke, through the alias
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.upload("s3://snapbucket/in/x.csv", b"rows\n")
    assert client.wait(task_id).phase is Phase.SUCCEEDED


def test_only_snapstart_functions_have_the_alias(client: AgentTestClient) -> None:
    lambda_client = client.stack.client("lambda")
    for function in client.stack.plan.functions:
        aliases = [a["Name"] for a in lambda_client.list_aliases(FunctionName=function.name)["Aliases"]]
        assert aliases == (["live"] if function.snapstart else []), function.name
