"""Every AWS call the deployed functions make in an async task's and a sensor task's lives is allowed by
their deployed IAM policies (moto enforces no IAM: tests/rehearsal/iam_audit.py evaluates the recorded
calls), and the grants no call used are the known ones, each with its reason.

The audited lives are one async agent's (`audited`): success, its own failure, a failing agent call
(Cleanup), abort -> finalize, an abort whose status change is lost (the sweeper finalizes it) and one
whose delete keeps failing (the sweeper ends it by its bound); and the sensor's (`files`): an S3 event,
its schedule, an abort, pokes that stopped (the sweeper ends it by its bound). With the api, finalize,
sweeper and poke functions they go through. The sweeper also finalizes again the endings of other agents'
tests run before (their delete functions' calls are checked for denials too, their grants not listed). Not
audited: the sync function (it calls nothing of AWS's), and the state machines' roles (moto's Step
Functions invokes Lambda without a client call to record).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from serverless_agents.agent import Phase
from serverless_agents.deployment.naming import sensor_schedule_name
from tests.rehearsal.conftest import AGENTS, SENSOR, WATCHED_BUCKET, Deployed
from tests.rehearsal.iam_audit import Call, CallRecorder, allowed, role_statements, unused_grants
from tests.rehearsal.lifecycle import (
    abort_running,
    create,
    create_file_sensor,
    get,
    object_created,
    status_change,
    sweep,
    wait_for,
    wait_for_execution,
    wait_past_bound,
)

pytestmark = pytest.mark.functional

ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED)
AUDITED = "example_job_short_timeout"  # the task type of agent `audited`
#: The agents whose functions' grants are listed: the audited lives' (other agents' are not used here).
LISTED = ("audited", SENSOR)


def audited_lives(deployed: Deployed) -> None:
    lives = {
        "audit-ok": {"polls": 2},
        "audit-fail": {"fail": True, "polls": 1},
        "audit-raise": {"raise_on": "get"},
    }
    # Side by side: each waits a second between its polls.
    tasks = {execution: create(deployed, AUDITED, execution, custom) for execution, custom in lives.items()}
    for task_id in tasks.values():
        wait_for(deployed, task_id, *ENDED)
    deployed.events.deliver(status_change(wait_for_execution(deployed, "audited", tasks["audit-raise"])))
    task_id = abort_running(deployed, "audited", AUDITED, "audit-abort", {})
    deployed.events.deliver(status_change(wait_for_execution(deployed, "audited", task_id)))
    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED
    sweeper_lives(deployed)
    sensor_tasks = sensor_lives(deployed)
    reads_of_the_lives(deployed, [*tasks.values(), task_id, *sensor_tasks])


def reads_of_the_lives(deployed: Deployed, task_ids: list[str]) -> None:
    """GetTaskLogs and GetTaskMetrics of the lives above, through their routes as the adapter calls them:
    the api filters the agents' log groups and reads the executions' histories."""
    for task_id in task_ids:
        for read in ("logs", "metrics"):
            answer = deployed.api.request("GET", f"/v1/tasks/{task_id}/{read}")
            assert answer.status == 200, (task_id, read, answer)


def sweeper_lives(deployed: Deployed) -> None:
    lost = abort_running(deployed, "audited", AUDITED, "audit-lost", {})
    overdue = abort_running(deployed, "audited", AUDITED, "audit-overdue", {"raise_on": "delete"})
    # Their status changes are lost: the sweeper finalizes both, and the second's delete raises.
    assert sweep(deployed).error
    wait_past_bound(deployed, overdue)
    sweep(deployed)  # ends the second by its bound
    assert Phase(get(deployed, lost).phase) is Phase.ABORTED
    assert Phase(get(deployed, overdue).phase) is Phase.FAILED


def sensor_lives(deployed: Deployed) -> tuple[str, ...]:
    (group,) = deployed.stack.physical("AWS::Scheduler::ScheduleGroup")
    by_event = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/audit/event.csv", "audit-event")
    deployed.events.deliver(object_created(deployed, WATCHED_BUCKET, "audit/event.csv"))
    scheduled = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/audit/scheduled.csv", "audit-schedule")
    deployed.scheduler.fire(group, sensor_schedule_name(scheduled)).result()
    aborted = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/audit/aborted.csv", "audit-abort")
    assert deployed.api.request("DELETE", f"/v1/tasks/{aborted}").status == 200
    # Its pokes stop (its schedule never fires): the sweeper ends it past its bound and deletes its schedule.
    stalled = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/audit/never.csv", "audit-stall", timeout=1)
    wait_past_bound(deployed, stalled)
    sweep(deployed)
    tasks = (by_event, scheduled, aborted, stalled)
    phases = [Phase(get(deployed, task_id).phase) for task_id in tasks]
    assert phases == [Phase.SUCCEEDED, Phase.RUNNING, Phase.ABORTED, Phase.FAILED]
    return tasks


@dataclass
class Audit:
    calls: dict[str, list[Call]]  # function -> its calls
    statements: dict[str, list[dict[str, Any]]]  # function -> its role's statements

    def denied(self) -> list[Call]:
        return [
            call for f, calls in self.calls.items() for call in calls if not allowed(self.statements[f], call)
        ]

    def unused(self) -> set[tuple[str, str]]:
        """(function's role, action) of the grants no call used, by the shared functions and the listed
        agents' own; other agents' resources left out."""
        unused = set()
        for function, calls in self.calls.items():
            role = _role(function)
            if role is None:
                continue
            for action, resource in unused_grants(self.statements[function], calls):
                if not _names_another_agent(resource):
                    unused.add((role, action))
        return unused


def _role(function: str) -> str | None:
    """`api` for rehearsal-api, `get` for rehearsal-audited-get; None for another agent's function."""
    name = function.removeprefix("rehearsal-")
    agent, _, role = name.rpartition("-")
    return role if agent in ("", *LISTED) else None


def _names_another_agent(resource: str) -> bool:
    others = "|".join(re.escape(name) for name in AGENTS if name not in LISTED)
    return re.search(rf"(rehearsal-({others})([-:]|$))|(/({others})/)", resource) is not None


@pytest.fixture(scope="module")
def audit(deployed: Deployed) -> Audit:
    start = len(deployed.calls.calls)
    audited_lives(deployed)
    calls: dict[str, list[Call]] = defaultdict(list)
    for call in deployed.calls.calls[start:]:
        calls[call.function].append(call)
    iam, lambda_client = deployed.client("iam"), deployed.client("lambda")
    return Audit(calls, {f: role_statements(iam, lambda_client, f) for f in calls})


#: Grants no call of the code used, and why. The Lambda service, not the code, writes a function's logs,
#: sends its active-tracing segments, and sends a failed asynchronous invocation to its destination.
RUNTIME = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's log group",
    "logs:PutLogEvents": "the Lambda runtime writes the function's log group",
    "xray:PutTraceSegments": "active tracing: the Lambda service sends the segments",
    "xray:PutTelemetryRecords": "active tracing: the Lambda service sends the telemetry",
}
EXPECTED_UNUSED = {
    **{
        (role, action): reason
        for role in ("api", "create", "get", "delete", "finalize", "sweeper", "poke")
        for action, reason in RUNTIME.items()
    },
    # The payload bucket's requests/ and outputs/ hold what is too large for the execution input and the
    # tasks table; these tasks' are small.
    ("api", "s3:PutObject"): "a large request, to requests/",
    ("api", "s3:GetObject"): "large outputs, from outputs/",
    ("get", "s3:GetObject"): "a large request, from requests/",
    ("get", "s3:PutObject"): "large outputs, to outputs/",
    ("create", "s3:GetObject"): "a large request, from requests/; and the agent's state/, which the example "
    "job's create writes without reading",
    # A Flyte 2 executor's Connection.secrets (serverless_agents.aws.connection_secrets): these lives send
    # none.
    **{
        ("api", f"secretsmanager:{action}"): "a Flyte 2 executor's Connection.secrets, kept per task scope"
        for action in ("CreateSecret", "GetSecretValue", "PutSecretValue", "TagResource")
    },
    **{
        (role, "secretsmanager:GetSecretValue"): "the connection secrets of a Flyte 2 connector's tasks"
        for role in ("create", "get", "delete")
    },
    ("sweeper", "secretsmanager:DescribeSecret"): "an expired connection secret, asked again before deleting",
    ("sweeper", "secretsmanager:DeleteSecret"): "an expired connection secret",
    ("finalize", "sqs:SendMessage"): "its on-failure destination (EventInvokeConfig): the Lambda service's",
    ("finalize", "sqs:GetQueueAttributes"): "granted with the destination by CDK; the Lambda service's",
    ("finalize", "sqs:GetQueueUrl"): "granted with the destination by CDK; the Lambda service's",
    ("poke", "s3:GetObject"): "a large request, from requests/ (its s3:GetObject on the watched objects is "
    "used: HeadObject)",
    ("poke", "s3:ListBucket"): "on the watched bucket: S3 checks it to answer HeadObject of a missing object "
    "404 rather than 403; no call is made",
    ("poke", "sqs:SendMessage"): "its on-failure destination (EventInvokeConfig): the Lambda service's",
    ("poke", "sqs:GetQueueAttributes"): "granted with the destination by CDK; the Lambda service's",
    ("poke", "sqs:GetQueueUrl"): "granted with the destination by CDK; the Lambda service's",
}


def test_every_call_of_the_deployed_functions_is_allowed_by_their_policies(audit: Audit) -> None:
    listed = {f for f in audit.calls if _role(f) is not None}
    assert listed == {f"rehearsal-{r}" for r in ("api", "finalize", "sweeper", f"{SENSOR}-poke")} | {
        f"rehearsal-audited-{r}" for r in ("create", "get", "delete")
    }
    # The sweeper finalizes again the endings of other agents' tests run before: their delete functions.
    assert {f.rsplit("-", 1)[-1] for f in set(audit.calls) - listed} <= {"delete"}
    assert audit.denied() == []


def test_the_grants_no_call_uses_are_the_known_ones(audit: Audit) -> None:
    assert audit.unused() == set(EXPECTED_UNUSED)


def test_async_get_and_delete_are_granted_no_read_they_never_make(audit: Audit) -> None:
    for role in ("get", "delete"):
        allowed = audit.statements[f"rehearsal-audited-{role}"]
        assert not [s for s in allowed if s["Effect"] == "Allow" and "dynamodb:GetItem" in s["Action"]]


def test_the_api_may_pass_the_scheduler_role_to_scheduler_only(audit: Audit) -> None:
    (passed,) = {c for c in audit.calls["rehearsal-api"] if c.action == "iam:PassRole"}
    assert passed.context == (("iam:PassedToService", "scheduler.amazonaws.com"),)
    statements = audit.statements["rehearsal-api"]
    assert allowed(statements, passed)
    # The same role passed to another service (a function of the attacker's, say) is not allowed.
    elsewhere = Call(
        passed.function, passed.action, passed.resource, (("iam:PassedToService", "lambda.amazonaws.com"),)
    )
    assert not allowed(statements, elsewhere)
    assert not allowed(statements, Call(passed.function, passed.action, passed.resource))


def test_the_audit_reads_leading_keys_and_evaluates_for_all_values_string_like_only() -> None:
    recorder = CallRecorder("123456789012", "us-east-1")
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks"
    (get_item,) = recorder.record(
        "f", "dynamodb", "GetItem", {"TableName": "tasks", "Key": {"id": {"S": "job_t"}}}
    )
    (query,) = recorder.record(
        "f",
        "dynamodb",
        "Query",
        {
            "TableName": "tasks",
            "IndexName": "watching",
            "KeyConditionExpression": "#w = :key",
            "ExpressionAttributeNames": {"#w": "watch"},
            "ExpressionAttributeValues": {":key": {"S": "job_s3://b/k"}},
        },
    )
    assert get_item.context == (("dynamodb:LeadingKeys", "job_t"),)
    assert query.context == (("dynamodb:LeadingKeys", "job_s3://b/k"),)
    assert query.resource == f"{table}/index/watching"
    condition = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["job_*"]}}
    statement = {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem"],
        "Resource": [table],
        "Condition": condition,
    }
    assert allowed([statement], get_item)
    for other in ("job-nightly_t", "etl_t", "jo_t", "[j]ob_t"):
        assert not allowed([statement], Call("f", get_item.action, table, (("dynamodb:LeadingKeys", other),)))
    unknown = {**statement, "Condition": {"ForAnyValue:StringLike": condition["ForAllValues:StringLike"]}}
    with pytest.raises(AssertionError, match="teach it"):
        allowed([unknown], get_item)


def test_the_api_reads_task_logs_and_histories_of_the_agents_only(audit: Audit) -> None:
    """GetTaskLogs' FilterLogEvents on the agents' own log groups and GetTaskMetrics' GetExecutionHistory
    on their executions: made, allowed, and nothing beside them (the api's own group, a sync agent's, another
    deployment's; another state machine's executions)."""
    statements = audit.statements["rehearsal-api"]
    api_calls = audit.calls["rehearsal-api"]
    reads = {(c.action, c.resource) for c in api_calls if c.action in READS}
    prefix = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/"

    assert {resource for action, resource in reads if action == "logs:FilterLogEvents"} == {
        f"{prefix}rehearsal-audited:*",
        f"{prefix}rehearsal-{SENSOR}:*",
    }
    assert {action for action, _ in reads} == set(READS)
    assert all(allowed(statements, c) for c in api_calls if c.action in READS)
    execution = next(r for a, r in reads if a == "states:GetExecutionHistory")
    elsewhere = [
        Call("rehearsal-api", "logs:FilterLogEvents", f"{prefix}rehearsal-api:*"),
        Call("rehearsal-api", "logs:FilterLogEvents", f"{prefix}rehearsal-echo:*"),
        Call("rehearsal-api", "logs:FilterLogEvents", f"{prefix}other-audited:*"),
        Call("rehearsal-api", "states:GetExecutionHistory", execution.replace(":rehearsal-", ":other-")),
    ]
    assert [c for c in elsewhere if allowed(statements, c)] == []


READS = ("logs:FilterLogEvents", "states:GetExecutionHistory")
