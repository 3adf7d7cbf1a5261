"""Each async agent's state machine runs the repository's definition, rendered as the local stack does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serverless_agents.deployment.statemachine import AsyncAgentFunctions, render_definition
from tests.infra.conftest import Synth

DEPLOYMENT = "serverless-agents"
EXECUTION_TIMEOUTS = {"job": 3600, "batch": 600}


def marker(value: Any) -> str:
    """A CloudFormation intrinsic (a function ARN, the partition) as a string that survives JSON."""
    return "@" + json.dumps(value, sort_keys=True, separators=(",", ":")).replace('"', "'") + "@"


def flatten(definition: Any) -> str:
    """`DefinitionString` (a Fn::Join of text and intrinsics) as text, each intrinsic as its marker."""
    if isinstance(definition, str):
        return definition
    delimiter, parts = definition["Fn::Join"]
    return str(delimiter).join(p if isinstance(p, str) else marker(p) for p in parts)


def machine(synth: Synth, agent: str) -> dict[str, Any]:
    logical_id = synth.logical_id(
        "AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-{agent}"
    )
    return dict(synth.json["Resources"][logical_id])


@pytest.mark.parametrize("agent", sorted(EXECUTION_TIMEOUTS))
def test_definition_is_the_rendered_repository_file(base: Synth, agent: str) -> None:
    def arn(role: str) -> str:
        return marker({"Fn::GetAtt": [base.function_id(f"{DEPLOYMENT}-{agent}-{role}"), "Arn"]})

    expected = render_definition(
        AsyncAgentFunctions(
            partition=marker({"Ref": "AWS::Partition"}),
            create_arn=arn("create"),
            get_arn=arn("get"),
            delete_arn=arn("delete"),
            execution_timeout_seconds=EXECUTION_TIMEOUTS[agent],
        ).substitutions()
    )
    deployed = flatten(machine(base, agent)["Properties"]["DefinitionString"])

    assert json.loads(deployed) == json.loads(expected)
    assert json.loads(deployed)["TimeoutSeconds"] == EXECUTION_TIMEOUTS[agent]


@pytest.mark.parametrize("agent", sorted(EXECUTION_TIMEOUTS))
def test_logs_every_transition_without_task_data_and_traces(base: Synth, agent: str) -> None:
    properties = machine(base, agent)["Properties"]
    log_groups = {k: r["Properties"] for k, r in base.resources("AWS::Logs::LogGroup").items()}
    (destination,) = properties["LoggingConfiguration"]["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]

    assert properties["StateMachineType"] == "STANDARD"
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert log_groups[group]["LogGroupName"] == f"/aws/vendedlogs/states/{DEPLOYMENT}-{agent}"


@pytest.mark.parametrize("agent", sorted(EXECUTION_TIMEOUTS))
def test_role_invokes_its_own_three_functions_only(base: Synth, agent: str) -> None:
    role = machine(base, agent)["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [p for p in base.properties("AWS::IAM::Policy") if p["Roles"] == [{"Ref": role}]]
    invoke = [s for s in policy["PolicyDocument"]["Statement"] if "lambda:InvokeFunction" in s["Action"]]

    assert invoke == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": [
                {"Fn::GetAtt": [base.function_id(f"{DEPLOYMENT}-{agent}-{r}"), "Arn"]}
                for r in ("create", "get", "delete")
            ],
        }
    ]


@pytest.mark.parametrize("agent", sorted(EXECUTION_TIMEOUTS))
def test_role_starts_executions_of_its_own_state_machine_only(base: Synth, agent: str) -> None:
    """Continue as new: the Continue state starts this state machine (`$$.StateMachine.Id`); the ARN is
    built from its name, so the role does not depend on the state machine that depends on it."""
    role = machine(base, agent)["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [p for p in base.properties("AWS::IAM::Policy") if p["Roles"] == [{"Ref": role}]]
    statements = policy["PolicyDocument"]["Statement"]

    def actions(statement: dict[str, Any]) -> list[str]:
        return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]

    (start,) = [s for s in statements if any(a.startswith("states:") for a in actions(s))]
    assert actions(start) == ["states:StartExecution"]
    resource = json.dumps(start["Resource"])
    assert f':stateMachine:{DEPLOYMENT}-{agent}"' in resource, resource
    assert "*" not in resource
