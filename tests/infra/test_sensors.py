"""Sensors in the stack: a FileSensor adds its poke function, schedule group and event rule, and the rule's
pattern (the manifest's, verbatim) matches the S3 "Object Created" event as S3 sends it, and only that."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from infra.cdk.serverless_agents_cdk.app import poke_reserved_concurrency_from
from infra.cdk.serverless_agents_cdk.sensor_triggers import POKE_RESERVED_CONCURRENCY

from serverless_agents.agents.file_sensor import FileSensor
from serverless_agents.deployment import naming
from serverless_agents.deployment.manifest import parse_manifest
from tests.infra.conftest import (
    FUNCTION_ARN_PREFIX,
    SENSOR_MANIFEST,
    WATCHED_BUCKET,
    Synth,
    load_event,
    matches,
    synthesize,
)
from tests.infra.test_iam import own_statements, policies_by_owner

DEPLOYMENT = "serverless-agents"
POKE = naming.agent_function_name(DEPLOYMENT, "files", "poke")
RECORDED = "s3_object_created.json"  # AWS's documented example (Amazon S3 user guide, ev-events)


def counts(synth: Synth) -> Counter[str]:
    return Counter(r["Type"] for r in synth.json["Resources"].values())


@pytest.fixture(scope="module")
def rule(sensing: Synth) -> dict[str, Any]:
    rules = [p for p in sensing.properties("AWS::Events::Rule") if p.get("Name") == f"{DEPLOYMENT}-files-0"]
    (properties,) = rules
    return properties


@pytest.fixture
def created(events_dir: Path) -> dict[str, Any]:
    return load_event(events_dir, RECORDED)


def in_bucket(event: dict[str, Any], bucket: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["detail"]["bucket"]["name"] = bucket
    changed["resources"] = [f"arn:aws:s3:::{bucket}"]
    return changed


def test_a_sensor_adds_its_poke_function_schedule_group_and_rule(base: Synth, sensing: Synth) -> None:
    added = counts(sensing) - counts(base)

    assert added == Counter(
        {
            "AWS::Lambda::Function": 1,  # poke
            "AWS::Scheduler::ScheduleGroup": 1,
            "AWS::Events::Rule": 1,  # one per pattern in `events`
            "AWS::Lambda::Permission": 1,  # EventBridge may invoke poke, from that rule
            "AWS::SQS::Queue": 1,  # the rule's dead-letter queue, and the poke function's
            "AWS::SQS::QueuePolicy": 1,  # EventBridge may send to it, from that rule
            "AWS::Lambda::EventInvokeConfig": 1,  # failed or stale pokes go to that queue
            "AWS::IAM::Role": 2,  # the poke function's; the one sensor schedules run as
            "AWS::IAM::Policy": 2,
            "AWS::Logs::LogGroup": 1,  # the agent's
            "AWS::CloudWatch::Alarm": 2 + 1,  # poke errors and throttles; dead letters
        }
    )
    assert counts(base) - counts(sensing) == Counter()
    (group,) = sensing.properties("AWS::Scheduler::ScheduleGroup")
    assert group == {"Name": naming.sensor_schedule_group(DEPLOYMENT, "files")}


def test_poke_function_follows_the_other_agent_functions(sensing: Synth) -> None:
    properties = sensing.json["Resources"][sensing.function_id(POKE)]["Properties"]
    log_groups = {
        k: r["Properties"]["LogGroupName"]
        for k, r in sensing.resources("AWS::Logs::LogGroup").items()
        if "LogGroupName" in r["Properties"]
    }

    assert properties["Handler"] == "functions.poke.handler.handler"
    assert (properties["MemorySize"], properties["Timeout"]) == (384, 20)
    assert properties["Runtime"] == "python3.12"
    assert properties["TracingConfig"] == {"Mode": "Active"}
    assert properties["Environment"]["Variables"]["SA_AGENT"] == "files"
    assert log_groups[properties["LoggingConfig"]["LogGroup"]["Ref"]] == naming.agent_log_group(
        DEPLOYMENT, "files"
    )
    # The same code as every other function (one stand-in folder when bundling is skipped).
    codes = {json.dumps(p["Code"], sort_keys=True) for p in sensing.properties("AWS::Lambda::Function")}
    assert len(codes) == 1


def test_every_function_can_target_and_authorize_sensor_schedules(sensing: Synth) -> None:
    (role,) = [
        k
        for k, r in sensing.resources("AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        == "scheduler.amazonaws.com"
    ]
    prefix = FUNCTION_ARN_PREFIX
    for properties in sensing.properties("AWS::Lambda::Function"):
        variables = properties["Environment"]["Variables"]
        assert variables["SA_FUNCTION_ARN_PREFIX"] == prefix, properties["FunctionName"]
        assert variables["SA_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": [role, "Arn"]}, properties["FunctionName"]


def test_rule_is_the_manifests_pattern_on_the_default_bus_targeting_poke(
    sensing: Synth, rule: dict[str, Any]
) -> None:
    (target,) = rule["Targets"]
    (queue,) = [k for k in sensing.resources("AWS::SQS::Queue") if k.startswith("SensorFiles")]

    assert rule["EventPattern"] == parse_manifest(SENSOR_MANIFEST).agent("files").events[0]
    assert "EventBusName" not in rule  # the default bus, where S3 sends its events
    assert rule["State"] == "ENABLED"
    assert target["Arn"] == {"Fn::GetAtt": [sensing.function_id(POKE), "Arn"]}
    # As the finalizer's rule: EventBridge's most retries for a day, then a dead-letter queue.
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}


def test_eventbridge_may_invoke_poke_from_that_rule_only(sensing: Synth) -> None:
    rule_id = sensing.logical_id("AWS::Events::Rule", Name=f"{DEPLOYMENT}-files-0")
    permissions = [
        p
        for p in sensing.properties("AWS::Lambda::Permission")
        if p["FunctionName"] == {"Fn::GetAtt": [sensing.function_id(POKE), "Arn"]}
    ]

    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [sensing.function_id(POKE), "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }
    ]


def test_pattern_matches_the_recorded_object_created_event(
    rule: dict[str, Any], created: dict[str, Any]
) -> None:
    assert created["detail"]["bucket"]["name"] == WATCHED_BUCKET
    assert matches(rule["EventPattern"], created)


def test_pattern_ignores_objects_created_in_another_bucket(
    rule: dict[str, Any], created: dict[str, Any]
) -> None:
    assert not matches(rule["EventPattern"], in_bucket(created, "amzn-s3-demo-bucket2"))


@pytest.mark.parametrize("detail_type", ["Object Deleted", "Object Restore Completed"])
def test_pattern_ignores_other_events_of_the_bucket(
    rule: dict[str, Any], created: dict[str, Any], detail_type: str
) -> None:
    assert not matches(rule["EventPattern"], {**created, "detail-type": detail_type})


def test_the_recorded_event_names_the_key_a_file_sensor_task_watches(created: dict[str, Any]) -> None:
    # What the poke function does with a matched event: find the tasks watching its object.
    sensor = FileSensor()
    key = f"s3://{WATCHED_BUCKET}/example-key"

    assert sensor.event_keys(created) == [key]
    assert sensor.watch_key(path=key) == key


def test_tasks_table_has_the_sparse_watching_index(sensing: Synth) -> None:
    (table,) = sensing.properties("AWS::DynamoDB::Table")

    assert {"AttributeName": "watch", "AttributeType": "S"} in table["AttributeDefinitions"]
    assert {
        "IndexName": "watching",
        "KeySchema": [{"AttributeName": "watch", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    } in table["GlobalSecondaryIndexes"]


def test_alarms_and_dashboard_cover_the_poke_function_and_the_dead_letters(sensing: Synth) -> None:
    names = {p["AlarmName"] for p in sensing.properties("AWS::CloudWatch::Alarm")}
    (dashboard,) = sensing.properties("AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])

    assert {f"{POKE}-errors", f"{POKE}-throttles", f"{DEPLOYMENT}-files-dead-letters"} <= names
    assert POKE in body
    assert "files pokes: invocations" in body


def test_outputs_name_the_sensor_dead_letter_queue(sensing: Synth, rule: dict[str, Any]) -> None:
    (target,) = rule["Targets"]
    queue = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]

    assert sensing.json["Outputs"]["SensorDeadLetterQueueUrlFiles"]["Value"] == {"Ref": queue}


def test_poke_function_reserves_its_concurrency_and_sends_failed_pokes_to_the_dead_letter_queue(
    sensing: Synth, rule: dict[str, Any]
) -> None:
    poke = sensing.function_id(POKE)
    (target,) = rule["Targets"]
    (config,) = [
        p for p in sensing.properties("AWS::Lambda::EventInvokeConfig") if p["FunctionName"] == {"Ref": poke}
    ]

    # Every invocation is asynchronous (schedules, rules, the first poke): a burst waits in Lambda's queue
    # instead of taking the account's concurrency from the api and the agents (docs/deploy.md).
    assert sensing.json["Resources"][poke]["Properties"]["ReservedConcurrentExecutions"] == 10
    assert config == {
        "FunctionName": {"Ref": poke},
        "Qualifier": "$LATEST",
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 3600,  # by then its schedule has poked the task again
        "DestinationConfig": {"OnFailure": {"Destination": target["DeadLetterConfig"]["Arn"]}},
    }
    # No other function reserves any: the api and the agents share the account's pool.
    reserving = [
        p["FunctionName"]
        for p in sensing.properties("AWS::Lambda::Function")
        if "ReservedConcurrentExecutions" in p
    ]
    assert reserving == [POKE]


@pytest.mark.parametrize(
    ("context", "reserved"), [(None, POKE_RESERVED_CONCURRENCY), ("25", 25), ("0", None), (0, None)]
)
def test_context_sets_the_poke_reserved_concurrency_and_zero_reserves_none(
    context: Any, reserved: int | None
) -> None:
    assert poke_reserved_concurrency_from(context) == reserved


def test_a_sensor_without_events_gets_no_rule_but_its_dead_letter_queue(tmp_path: Path) -> None:
    synth = synthesize(
        '[agents.files]\nclass = "serverless_agents.agents.file_sensor:FileSensor"\n', tmp_path
    )
    found = counts(synth)

    # api, finalize, poke, and the sweeper: it ends a sensor task whose pokes stopped.
    assert found["AWS::Lambda::Function"] == 4
    assert found["AWS::Scheduler::ScheduleGroup"] == 1
    assert found["AWS::Events::Rule"] == 1  # the sweeper's schedule: no state machine, no sensor events
    sweeper = policies_by_owner(synth)["serverless-agents-sweeper"]
    schedules = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":scheduler:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":schedule/serverless-agents-files/*",
            ],
        ]
    }
    # No executions to list or deletes to invoke: the table's open tasks, and the sensors' schedules.
    assert own_statements(sweeper) == [
        (("scheduler:DeleteSchedule",), [schedules]),
        (
            ("dynamodb:Query",),
            [
                {
                    "Fn::Join": [
                        "",
                        [{"Fn::GetAtt": [synth.logical_id("AWS::DynamoDB::Table"), "Arn"]}, "/index/open"],
                    ]
                }
            ],
        ),
        (
            ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            [{"Fn::GetAtt": [synth.logical_id("AWS::DynamoDB::Table"), "Arn"]}],
        ),
    ]
    assert found["AWS::SQS::Queue"] == 2  # finalize's; the poke function's on-failure destination
    assert [k for k in synth.json["Outputs"] if k.startswith("SensorDeadLetterQueueUrl")] == [
        "SensorDeadLetterQueueUrlFiles"
    ]
