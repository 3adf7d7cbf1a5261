"""One description of the deployment: the synthesized template and the local stack both make what
`serverless_agents.deployment.plan` says, function by function, and so they make the same thing.

What differs is only what each place resolves itself: CloudFormation names the table and the bucket and
fills the ARN prefixes from the account (tokens in the template, values on moto), and only the local stack
sets SA_MANIFEST (the bundle carries the manifest at the task root).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.deployment.plan import RUNTIME, DeploymentPlan, Place, plan_deployment
from serverless_agents.exceptions import ManifestError
from serverless_agents.local.stack import LocalStack
from serverless_agents.runtime import settings as env_names
from tests.infra.conftest import BASE_MANIFEST, SENSOR_MANIFEST, Synth, synthesize
from tests.infra.test_state_machine import flatten, marker

#: Resolved by each place itself: CloudFormation tokens in the template, moto's values locally.
RESOLVED_BY_EACH = {
    env_names.TASKS_TABLE,
    env_names.PAYLOAD_BUCKET,
    env_names.STATE_MACHINE_ARN_PREFIX,
    env_names.FUNCTION_ARN_PREFIX,
    env_names.SCHEDULER_ROLE_ARN,
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("one-plan") / "agents.toml"
    path.write_text(SENSOR_MANIFEST)  # async, sync and sensor agents, an event rule
    return path


@pytest.fixture(scope="module")
def synth(manifest: Path) -> Synth:
    return synthesize(manifest.read_text(), manifest.parent / "synth")


@pytest.fixture(scope="module")
def plan(manifest: Path) -> DeploymentPlan:
    return plan_deployment(manifest)


def functions_made_locally(manifest: Path) -> dict[str, dict[str, Any]]:
    with LocalStack(manifest) as stack:
        client = stack.client("lambda")
        names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
        return {name: client.get_function_configuration(FunctionName=name) for name in names}


@pytest.fixture(scope="module")
def local_functions(manifest: Path) -> dict[str, dict[str, Any]]:
    return functions_made_locally(manifest)


def template_functions(synth: Synth) -> dict[str, dict[str, Any]]:
    return {p["FunctionName"]: p for p in synth.properties("AWS::Lambda::Function")}


def literal(variables: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in variables.items() if k not in RESOLVED_BY_EACH}


def log_group_names(synth: Synth) -> dict[str, str]:
    log_groups = synth.resources("AWS::Logs::LogGroup").items()
    return {k: r["Properties"].get("LogGroupName", "") for k, r in log_groups}


def test_the_template_makes_every_function_of_the_plan_as_planned(synth: Synth, plan: DeploymentPlan) -> None:
    functions = template_functions(synth)
    log_groups = log_group_names(synth)
    # Values do not matter here: the keys resolved by each place are left out of the comparison.
    shared = plan.shared_environment(
        Place("aws", "us-east-1", "123456789012"), tasks_table="", payload_bucket="", scheduler_role_arn=""
    )
    assert set(functions) == {f.name for f in plan.functions}
    for planned in plan.functions:
        made = functions[planned.name]
        assert made["Handler"] == planned.handler, planned.name
        assert made["Runtime"] == RUNTIME
        assert (made["MemorySize"], made["Timeout"]) == (planned.memory, planned.timeout), planned.name
        assert log_groups[made["LoggingConfig"]["LogGroup"]["Ref"]] == planned.log_group, planned.name
        variables = made["Environment"]["Variables"]
        expected = planned.environment(shared)
        assert set(variables) == set(expected), planned.name
        assert literal(variables) == literal(expected), planned.name


def test_the_local_stack_makes_what_the_template_makes(
    synth: Synth, local_functions: dict[str, dict[str, Any]]
) -> None:
    assert_same_functions(template_functions(synth), local_functions)


def test_the_local_stack_makes_what_the_template_makes_without_sensors_too(
    base: Synth, tmp_path: Path
) -> None:
    # No sensors: no scheduler role in either environment (the base synth is the session's).
    manifest = tmp_path / "agents.toml"
    manifest.write_text(BASE_MANIFEST)
    assert_same_functions(template_functions(base), functions_made_locally(manifest))


def assert_same_functions(
    template: dict[str, dict[str, Any]], local_functions: dict[str, dict[str, Any]]
) -> None:
    assert set(local_functions) == set(template)
    for name, made in template.items():
        local = local_functions[name]
        assert local["Handler"] == made["Handler"], name
        assert local["Runtime"] == made["Runtime"], name
        assert (local["MemorySize"], local["Timeout"]) == (made["MemorySize"], made["Timeout"]), name
        deployed = made["Environment"]["Variables"]
        variables = dict(local["Environment"]["Variables"])
        assert variables.pop(env_names.MANIFEST).endswith("agents.toml")  # locally only: no bundle
        assert set(variables) == set(deployed), name
        assert literal(variables) == literal(deployed), name


def test_the_template_makes_the_plans_state_machines_schedule_groups_and_rules(
    synth: Synth, plan: DeploymentPlan
) -> None:
    machines = {p["StateMachineName"] for p in synth.properties("AWS::StepFunctions::StateMachine")}
    assert machines == {a.state_machine for a in plan.async_agents}
    groups = {p["Name"] for p in synth.properties("AWS::Scheduler::ScheduleGroup")}
    assert groups == set(plan.schedule_groups)
    rules = {p.get("Name"): p for p in synth.properties("AWS::Events::Rule")}
    for agent in plan.sensor_agents:
        for rule in agent.rules:
            assert rules[rule.name]["EventPattern"] == rule.pattern
    assert plan.sweep_rule is not None
    assert rules[plan.sweep_rule.name]["ScheduleExpression"] == plan.sweep_rule.schedule


def test_the_local_stack_runs_the_state_machine_definitions_the_template_deploys(
    synth: Synth, plan: DeploymentPlan, manifest: Path
) -> None:
    # Both render with statemachine.agent_definition: once each function's ARN (a CloudFormation
    # intrinsic there, moto's ARN here) reads as its name, the definitions are the same.
    with LocalStack(manifest) as stack:
        client = stack.client("stepfunctions")
        local = {
            m["name"]: client.describe_state_machine(stateMachineArn=m["stateMachineArn"])["definition"]
            for m in client.list_state_machines()["stateMachines"]
        }
    deployed = {
        p["StateMachineName"]: flatten(p["DefinitionString"])
        for p in synth.properties("AWS::StepFunctions::StateMachine")
    }
    assert set(local) == set(deployed) == {a.state_machine for a in plan.async_agents}
    for agent in plan.async_agents:
        assert agent.state_machine is not None
        template = deployed[agent.state_machine].replace(marker({"Ref": "AWS::Partition"}), "aws")
        for function in agent.functions.values():
            arn = marker({"Fn::GetAtt": [synth.function_id(function.name), "Arn"]})
            template = template.replace(arn, function.name)
        made = re.sub(r"arn:aws:lambda:[\w-]+:\d{12}:function:", "", local[agent.state_machine])
        assert json.loads(made) == json.loads(template), agent.name


@pytest.mark.parametrize("name", ["api", "finalize", "sweeper"])
def test_an_agent_named_like_a_shared_function_is_refused_before_any_deploy(
    tmp_path: Path, name: str
) -> None:
    # Its log group would be the shared function's: CloudFormation would fail half-way through the deploy.
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        f'[agents.{name}]\nclass = "serverless_agents.examples:JobAgent"\n'
        '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'
    )
    with pytest.raises(ManifestError, match=f"agent '{name}' and the {name} function would both make"):
        plan_deployment(manifest)
