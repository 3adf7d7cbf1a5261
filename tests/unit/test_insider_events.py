"""What an async agent's events declaration becomes: its rules, its state machine's wait, its job ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.agent import AsyncAgentBase
from serverless_agents.agents.ecs import EcsFargateAgent, EcsTaskMetadata
from serverless_agents.deployment.compiled_manifest import HISTORY_EVENT_LIMIT, MAX_POLLS_PER_EXECUTION
from serverless_agents.deployment.job_events import JobEvents, job_events
from serverless_agents.deployment.manifest import AgentSettings
from serverless_agents.deployment.plan import plan_deployment
from serverless_agents.deployment.statemachine import AsyncAgentFunctions, render_definition
from serverless_agents.exceptions import ManifestError

ECS_STOPPED = {
    "source": ["aws.ecs"],
    "detail-type": ["ECS Task State Change"],
    "detail": {"lastStatus": ["STOPPED"]},
}


def _definition(listens: bool) -> dict[str, Any]:
    functions = AsyncAgentFunctions("aws", "create-arn", "get-arn", "delete-arn", 3600, listens=listens)
    return dict(json.loads(render_definition(functions.substitutions())))


def test_an_agent_with_events_waits_in_listen_which_a_token_or_the_poll_wait_ends() -> None:
    states = _definition(listens=True)["States"]

    listen = states["Listen"]
    assert listen["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert listen["Parameters"]["FunctionName"] == "get-arn"
    assert listen["Parameters"]["Payload"]["wait_token.$"] == "$$.Task.Token"
    assert listen["TimeoutSecondsPath"] == "$.job.wait_seconds"
    assert listen["ResultPath"] is None  # the token's answer changes nothing in the state
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in listen["Catch"]}
    assert catches == {("States.Timeout",): "Get", ("States.ALL",): "Wait"}  # the poll; polling as fallback
    assert listen["Next"] == "Get"
    ended = {c.get("Next") for c in states["Ended?"]["Choices"]}
    assert "Listen" in ended
    assert "Wait" not in ended
    assert states["Started?"]["Choices"][0]["Next"] == "Listen"  # a successor in the chain listens too
    for step in ("Create", "Get"):
        assert states[step]["ResultSelector"]["wakes.$"] == "$.Payload.wakes"


def test_an_agent_without_events_keeps_the_plain_wait_and_no_listen_state() -> None:
    states = _definition(listens=False)["States"]

    assert "Listen" not in states  # Step Functions refuses a state nothing reaches
    assert {c.get("Next") for c in states["Ended?"]["Choices"]} >= {"Wait"}
    assert states["Wait"]["SecondsPath"] == "$.job.wait_seconds"


def test_the_ecs_agent_declares_stopped_tasks_named_by_their_arn() -> None:
    declared = job_events("ecs", EcsFargateAgent, AgentSettings.model_validate({"class": "x.y:Z"}))

    assert declared == JobEvents((ECS_STOPPED,), "detail.taskArn")
    event = {"source": "aws.ecs", "detail": {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/abc"}}
    assert declared.job_ids(event) == ["arn:aws:ecs:us-east-1:1:task/c/abc"]
    assert declared.job_ids({"detail": {}}) == []
    assert declared.job_ids({"detail": {"taskArn": ["a", 3, "b"]}}) == ["a", "b"]
    metadata = EcsTaskMetadata(
        cluster="c", task_arn="arn:t", region="us-east-1", output_prefix="s3://b/p", expects_outputs=False
    )
    assert EcsFargateAgent().job_id(metadata) == "arn:t"


def test_the_manifest_adds_patterns_and_replaces_the_path() -> None:
    pattern = {"source": ["my.platform"]}
    settings = AgentSettings.model_validate(
        {"class": "x.y:Z", "events": [pattern], "event_job_id": "detail.id"}
    )

    declared = job_events("ecs", EcsFargateAgent, settings)

    assert declared is not None
    assert declared.patterns == (ECS_STOPPED, pattern)
    assert declared.job_id_path == "detail.id"


def test_patterns_without_a_path_to_the_job_are_refused_naming_the_fields() -> None:
    class Platform(AsyncAgentBase[Any]):
        task_type = "platform"

    settings = AgentSettings.model_validate({"class": "x.y:Z", "events": [{"source": ["my.platform"]}]})

    with pytest.raises(ManifestError, match=r"agents\.platform\.events.*event_job_id"):
        job_events("platform", Platform, settings)
    assert job_events("platform", Platform, AgentSettings.model_validate({"class": "x.y:Z"})) is None


@pytest.mark.parametrize("path", ["", "detail..id", "detail.id.", "$.detail", "detail id"])
def test_a_malformed_event_job_id_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="event_job_id"):
        AgentSettings.model_validate({"class": "x.y:Z", "event_job_id": path})


def test_the_plan_targets_the_get_function_with_the_ecs_agents_rule(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        '[deployment]\nname = "d"\n\n[agents.ecs]\nclass = "serverless_agents.agents.ecs:EcsFargateAgent"\n'
        '\n[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n'
    )

    plan = plan_deployment(manifest)
    agents = {agent.name: agent for agent in plan.agents}
    ecs, job = agents["ecs"], agents["job"]

    assert ecs.listens
    assert not job.listens
    (rule,) = ecs.rules
    assert rule.target == ecs.function("get").name
    assert rule.pattern == ECS_STOPPED
    assert rule.name == "d-ecs-0"
    assert job.rules == ()


def test_the_default_polls_per_execution_fits_the_listen_loop() -> None:
    # 13 history events a poll with Listen (docs/deploy.md): the most allowed still fits one execution.
    assert 13 * MAX_POLLS_PER_EXECUTION + 700 <= HISTORY_EVENT_LIMIT
