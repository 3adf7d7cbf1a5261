"""The sweeper: deployed with the async agents, run every 15 minutes, allowed what it calls and no more,
and alarmed when it ends a task by its bound."""

from __future__ import annotations

import json
from typing import Any

from serverless_agents.deployment import naming
from serverless_agents.deployment.plan import SWEEP_LOOKBACK_MINUTES as LOOKBACK_MINUTES
from serverless_agents.deployment.plan import SWEEP_PERIOD_MINUTES as PERIOD_MINUTES
from serverless_agents.runtime.sweeper import ENDED_BY_BOUND_METRIC
from tests.infra.conftest import Synth
from tests.infra.test_iam import (
    ARN_PREFIX,
    REGION_ACCOUNT,
    as_list,
    connection_secrets,
    own_statements,
    policies_by_owner,
)
from tests.infra.test_nag import acknowledgments

DEPLOYMENT = "serverless-agents"
SWEEPER = naming.shared_function_name(DEPLOYMENT, "sweeper")
AGENTS = ("job", "batch")  # the base manifest's async agents


def functions(synth: Synth) -> dict[str, dict[str, Any]]:
    return {p["FunctionName"]: p for p in synth.properties("AWS::Lambda::Function")}


def schedule(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, r["Properties"])
        for logical_id, r in synth.resources("AWS::Events::Rule").items()
        if "ScheduleExpression" in r["Properties"]
    ]
    return found


def test_sweeper_function_runs_the_sweeper_handler_from_the_core_bundle(base: Synth) -> None:
    sweeper, api = functions(base)[SWEEPER], functions(base)[f"{DEPLOYMENT}-api"]

    assert sweeper["Handler"] == "functions.sweeper.handler.handler"
    assert (sweeper["MemorySize"], sweeper["Timeout"]) == (256, 300)  # as the local stack makes it
    assert sweeper["Code"] == api["Code"]
    # The shared environment (SA_STATE_MACHINE_ARN_PREFIX and the bundled manifest name the machines),
    # and how far back it looks.
    assert sweeper["Environment"]["Variables"] == {
        **api["Environment"]["Variables"],
        "SA_SWEEP_LOOKBACK_MINUTES": "60",
    }
    group = base.json["Resources"][sweeper["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert group["LogGroupName"] == f"/aws/lambda/{SWEEPER}"


def test_a_schedule_runs_it_every_15_minutes_looking_back_four_periods(base: Synth) -> None:
    rule_id, rule = schedule(base)
    (target,) = rule["Targets"]

    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    assert rule["State"] == "ENABLED"
    assert rule["Name"] == SWEEPER
    assert target["Arn"] == {"Fn::GetAtt": [base.function_id(SWEEPER), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 15 * 60}  # then it is the next sweep's
    assert (PERIOD_MINUTES, LOOKBACK_MINUTES) == (15, 60)
    (permission,) = [
        p
        for p in base.properties("AWS::Lambda::Permission")
        if p["Principal"] == "events.amazonaws.com"
        and p["FunctionName"] == {"Fn::GetAtt": [base.function_id(SWEEPER), "Arn"]}
    ]
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_sweeper_lists_describes_and_invokes_the_async_agents_deletes_only(base: Synth) -> None:
    machines = [
        {"Ref": base.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-{a}")}
        for a in AGENTS
    ]
    executions = [
        {"Fn::Join": ["", [*ARN_PREFIX, ":states:", *REGION_ACCOUNT, f":execution:{DEPLOYMENT}-{a}:*"]]}
        for a in AGENTS
    ]
    deletes = [{"Fn::GetAtt": [base.function_id(f"{DEPLOYMENT}-{a}-delete"), "Arn"]} for a in AGENTS]
    table = {"Fn::GetAtt": [base.logical_id("AWS::DynamoDB::Table"), "Arn"]}
    statements = policies_by_owner(base)[SWEEPER]

    assert own_statements(statements) == [
        (("states:ListExecutions",), machines),
        (("states:DescribeExecution",), executions),
        (("lambda:InvokeFunction",), deletes),
        # The connection secrets no task can still use: listed (ListSecrets, on "*" below), deleted by prefix.
        (
            ("secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret"),
            connection_secrets(f"{DEPLOYMENT}/connections/"),
        ),
        # The open tasks past their bound: one index, and the items it names (read, then ended).
        (("dynamodb:Query",), [{"Fn::Join": ["", [table, "/index/open"]]}]),
        (("dynamodb:GetItem", "dynamodb:UpdateItem"), [table]),
    ]
    # Beyond those: its own log group and X-Ray, as every function (test_iam.py).
    assert {a for s in statements for a in as_list(s["Action"])} == {
        "states:ListExecutions",
        "states:DescribeExecution",
        "lambda:InvokeFunction",
        "secretsmanager:ListSecrets",
        "secretsmanager:DescribeSecret",
        "secretsmanager:DeleteSecret",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_sweeper_invokes_what_finalize_invokes(base: Synth, sensing: Synth) -> None:
    for synth in (base, sensing):  # the sensor's poke function is no delete function
        owners = policies_by_owner(synth)
        invoked = [
            [s for s in owners[name] if "lambda:InvokeFunction" in as_list(s["Action"])]
            for name in (SWEEPER, f"{DEPLOYMENT}-finalize")
        ]
        assert invoked[0] == invoked[1]


def test_cdk_nag_wildcards_acknowledged_are_the_execution_arns_and_x_ray(base: Synth) -> None:
    found = acknowledgments(base)[f"{DEPLOYMENT}/Sweeper/Sweep/Role"]
    region_account = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"

    assert set(found) == {
        "AwsSolutions-IAM5[Resource::*]",  # X-Ray, secretsmanager:ListSecrets
        *(f"AwsSolutions-IAM5[Resource::{region_account}:execution:{DEPLOYMENT}-{a}:*]" for a in AGENTS),
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
        f"secret:{DEPLOYMENT}/connections/*]",
    }
    assert (
        "execution names are task ids"
        in found[f"AwsSolutions-IAM5[Resource::{region_account}:execution:{DEPLOYMENT}-job:*]"]
    )


def test_a_task_ended_by_its_bound_raises_an_alarm(base: Synth, sensing: Synth) -> None:
    alarms = {p["AlarmName"]: p for p in base.properties("AWS::CloudWatch::Alarm")}
    (topic,) = base.resources("AWS::SNS::Topic")

    alarm = alarms[f"{DEPLOYMENT}-tasks-ended-by-bound"]
    # What serverless_agents/handlers/sweeper.py counts: Powertools' namespace and `service` dimension.
    assert (alarm["Namespace"], alarm["MetricName"]) == ("ServerlessAgents", ENDED_BY_BOUND_METRIC)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "serverless-agents"}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"  # no sweep, or nothing ended: all is well
    assert alarm["AlarmActions"] == [{"Ref": topic}]
    # The sensing manifest has async agents too; a deployment without any has no sweeper to count.
    assert f"{DEPLOYMENT}-tasks-ended-by-bound" in {
        p["AlarmName"] for p in sensing.properties("AWS::CloudWatch::Alarm")
    }


def test_alarms_and_dashboard_cover_the_sweeper(base: Synth) -> None:
    alarms = {p["AlarmName"]: p for p in base.properties("AWS::CloudWatch::Alarm")}
    (dashboard,) = base.properties("AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])

    errors = alarms[f"{SWEEPER}-errors"]
    assert errors["MetricName"] == "Errors"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": base.function_id(SWEEPER)}}]
    assert f"{SWEEPER}-throttles" in alarms
    assert "sweeper: errors and throttles" in body
    assert '\\"SweptDeletes\\"' in body  # what serverless_agents/handlers/sweeper.py counts
