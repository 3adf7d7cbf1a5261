"""The plan alone (no synth, no moto): what each kind of agent gets, and what it does not."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from serverless_agents import handlers
from serverless_agents.deployment.plan import HandlerName, Place, plan_deployment, status_change_rule
from serverless_agents.runtime import settings as env_names
from serverless_agents.runtime.endings import ENDED_STATUSES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text('[deployment]\nname = "dep"\n' + text)
    return path


def test_each_kind_gets_its_functions_sized_by_its_manifest_entry(tmp_path: Path) -> None:
    plan = plan_deployment(
        write(
            tmp_path,
            '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\nmemory = 1024\ntimeout = 120\n'
            'tracing = true\n[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n',
        )
    )

    job, echo = plan.agents
    assert [f.name for f in job.functions.values()] == ["dep-job-create", "dep-job-get", "dep-job-delete"]
    assert {(f.memory, f.timeout, f.log_group) for f in job.functions.values()} == {
        (1024, 120, "/aws/lambda/dep-job")
    }
    assert job.function("get").handler == "functions.get.handler.handler"
    assert job.function("get").own_environment == {env_names.AGENT: "job", env_names.TRACING: "true"}
    assert job.state_machine == "dep-job"
    assert (job.schedule_group, job.rules) == (None, ())
    assert list(echo.functions) == ["sync"]
    assert echo.state_machine is None
    assert plan.sweeper is not None
    assert plan.sweeper.own_environment == {env_names.SWEEP_LOOKBACK_MINUTES: "60"}
    assert plan.sweep_rule is not None
    assert plan.sweep_rule.schedule == "rate(15 minutes)"


def test_without_async_agents_there_is_nothing_to_sweep(tmp_path: Path) -> None:
    plan = plan_deployment(write(tmp_path, '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'))

    assert (plan.sweeper, plan.sweep_rule) == (None, None)
    assert [f.name for f in plan.functions] == ["dep-api", "dep-finalize", "dep-echo-sync"]


def test_the_shared_environment_names_the_place_and_only_then_the_scheduler_role(tmp_path: Path) -> None:
    plan = plan_deployment(write(tmp_path, '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'))
    place = Place("aws-cn", "cn-north-1", "111122223333")

    shared = plan.shared_environment(place, tasks_table="t", payload_bucket="b", scheduler_role_arn="arn:r")

    assert shared[env_names.STATE_MACHINE_ARN_PREFIX] == (
        "arn:aws-cn:states:cn-north-1:111122223333:stateMachine:dep-"
    )
    assert shared[env_names.FUNCTION_ARN_PREFIX] == "arn:aws-cn:lambda:cn-north-1:111122223333:function:"
    assert env_names.SCHEDULER_ROLE_ARN not in shared  # no sensors: no schedules to run as it
    assert env_names.MANIFEST not in shared  # on AWS the bundle carries the manifest


def test_the_status_change_rule_matches_exactly_the_endings_of_the_machines_named(tmp_path: Path) -> None:
    plan = plan_deployment(write(tmp_path, '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n'))

    rule = status_change_rule(plan.finalize, ["arn:aws:states:r:1:stateMachine:dep-job"])

    assert rule.target == "dep-finalize"
    assert rule.pattern["detail"] == {
        "status": list(ENDED_STATUSES),
        "stateMachineArn": ["arn:aws:states:r:1:stateMachine:dep-job"],
    }


def test_the_plans_handler_names_are_the_handlers_roles() -> None:
    names = {name for roles in get_args(HandlerName) for name in get_args(roles)}  # a union of Literals
    assert names == set(handlers.ROLES)
