"""The status-change rule matches the events finalize is for, and only those, and cannot lose them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from infra.cdk.serverless_agents_cdk.finalizer import MACHINES_PER_RULE

from serverless_agents.runtime.endings import ENDED_STATUSES, STATUS_CHANGE_DETAIL_TYPE
from tests.infra.conftest import ACCOUNT, REGION, Synth, load_event, matches

DEPLOYMENT = "serverless-agents"
RECORDED = "sfn_execution_status_change_aborted.json"


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """The pattern's `{"Ref": <state machine>}` as the ARN CloudFormation will put there."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return refs[value["Ref"]]
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


@pytest.fixture(scope="module")
def rule(base: Synth) -> dict[str, Any]:
    # The other rule is the sweeper's schedule (test_sweeper.py).
    (properties,) = [p for p in base.properties("AWS::Events::Rule") if "EventPattern" in p]
    return properties


@pytest.fixture(scope="module")
def pattern(base: Synth, rule: dict[str, Any]) -> dict[str, Any]:
    refs = {
        logical_id: f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{r['Properties']['StateMachineName']}"
        for logical_id, r in base.resources("AWS::StepFunctions::StateMachine").items()
    }
    return dict(resolve(rule["EventPattern"], refs))


@pytest.fixture
def aborted(events_dir: Path) -> dict[str, Any]:
    return load_event(events_dir, RECORDED)


def variant(event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["detail"].update(detail)
    return changed


def test_matches_the_recorded_aborted_event(pattern: dict[str, Any], aborted: dict[str, Any]) -> None:
    assert aborted["detail"]["stateMachineArn"].endswith(f":stateMachine:{DEPLOYMENT}-job")
    assert matches(pattern, aborted)


def test_matches_exactly_the_statuses_finalize_ends_tasks_for(pattern: dict[str, Any]) -> None:
    # One table (serverless_agents.runtime.endings) for the rule, finalize and the sweeper:
    # tests/unit/test_endings.py
    assert pattern["detail"]["status"] == list(ENDED_STATUSES)


@pytest.mark.parametrize("status", ["TIMED_OUT", "FAILED"])
def test_matches_the_other_endings_that_skip_cleanup(
    pattern: dict[str, Any], aborted: dict[str, Any], status: str
) -> None:
    assert matches(pattern, variant(aborted, status=status))


@pytest.mark.parametrize("status", ["SUCCEEDED", "RUNNING"])
def test_ignores_executions_that_did_not_end_badly(
    pattern: dict[str, Any], aborted: dict[str, Any], status: str
) -> None:
    assert not matches(pattern, variant(aborted, status=status))


def test_matches_every_agent_state_machine_of_this_deployment(
    pattern: dict[str, Any], aborted: dict[str, Any]
) -> None:
    batch = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{DEPLOYMENT}-batch"
    assert matches(pattern, variant(aborted, stateMachineArn=batch))


@pytest.mark.parametrize("name", ["serverless-agents-dev-job", "other-job", "serverless-agents-echo"])
def test_ignores_state_machines_of_other_deployments(
    pattern: dict[str, Any], aborted: dict[str, Any], name: str
) -> None:
    other = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    assert not matches(pattern, variant(aborted, stateMachineArn=other))


def test_ignores_other_sources(pattern: dict[str, Any], aborted: dict[str, Any]) -> None:
    assert not matches(pattern, {**aborted, "source": "my.app"})
    assert not matches(pattern, {**aborted, "detail-type": "Step Functions State Machine Status Change"})


def test_targets_finalize_with_retries_and_a_dead_letter_queue(base: Synth, rule: dict[str, Any]) -> None:
    (target,) = rule["Targets"]
    queue = base.logical_id("AWS::SQS::Queue")

    assert target["Arn"] == {"Fn::GetAtt": [base.function_id(f"{DEPLOYMENT}-finalize"), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}
    assert rule["State"] == "ENABLED"


def test_failed_finalize_invocations_reach_the_same_queue(base: Synth) -> None:
    (config,) = base.properties("AWS::Lambda::EventInvokeConfig")
    queue = base.logical_id("AWS::SQS::Queue")

    assert config["FunctionName"] == {"Ref": base.function_id(f"{DEPLOYMENT}-finalize")}
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    (queue_properties,) = base.properties("AWS::SQS::Queue")
    assert queue_properties["SqsManagedSseEnabled"] is True


def test_a_rule_pattern_stays_within_eventbridge_limits_at_its_most_machines() -> None:
    # The synthesized pattern holds tokens; measure the longest ARNs the manifest's names allow instead.
    longest = "arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:" + "d" * 20 + "-" + "a" * 30
    pattern = {
        "source": ["aws.states"],
        "detail-type": [STATUS_CHANGE_DETAIL_TYPE],
        "detail": {"status": list(ENDED_STATUSES), "stateMachineArn": [longest] * MACHINES_PER_RULE},
    }
    assert len(json.dumps(pattern)) <= 4096  # PutRule's EventPattern limit
