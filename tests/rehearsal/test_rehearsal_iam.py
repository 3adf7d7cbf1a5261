"""Every AWS call the deployed functions make in an async task's lives is allowed by their deployed IAM
policies (moto enforces no IAM: tests/rehearsal/iam_audit.py evaluates the recorded calls), and the grants
no call used are the known ones, each with its reason.

The audited lives are one agent's (`audited`): success, its own failure, a failing agent call (Cleanup),
and abort -> finalize; with the api and finalize functions they go through. Not audited yet: sync,
sensor and sweeper functions, and the state machines' roles (moto's Step Functions invokes Lambda
without a client call to record).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from serverless_agents.agent import Phase
from tests.rehearsal.conftest import AGENTS, Deployed
from tests.rehearsal.iam_audit import Call, allowed, role_statements, unused_grants
from tests.rehearsal.lifecycle import create, get, status_change, wait_for, wait_for_execution

pytestmark = pytest.mark.functional

ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED)


def audited_lives(deployed: Deployed) -> None:
    for execution, custom in (("audit-ok", {"polls": 2}), ("audit-fail", {"fail": True, "polls": 1})):
        wait_for(deployed, create(deployed, "example_job_short_timeout", execution, custom), *ENDED)
    task_id = create(deployed, "example_job_short_timeout", "audit-raise", {"raise_on": "get"})
    wait_for(deployed, task_id, *ENDED)
    deployed.events.deliver(status_change(wait_for_execution(deployed, "audited", task_id)))
    task_id = create(deployed, "example_job_short_timeout", "audit-abort", {"polls": 1000000})
    wait_for(deployed, task_id, Phase.RUNNING)
    assert deployed.api.request("DELETE", f"/v1/tasks/{task_id}").status == 200
    deployed.events.deliver(status_change(wait_for_execution(deployed, "audited", task_id)))
    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED


@dataclass
class Audit:
    calls: dict[str, list[Call]]  # function -> its calls
    statements: dict[str, list[dict[str, Any]]]  # function -> its role's statements

    def denied(self) -> list[Call]:
        return [
            call for f, calls in self.calls.items() for call in calls if not allowed(self.statements[f], call)
        ]

    def unused(self) -> set[tuple[str, str]]:
        """(function's role, action) of the grants no call used, other agents' resources left out."""
        unused = set()
        for function, calls in self.calls.items():
            role = function.removeprefix("rehearsal-").removeprefix("audited-")
            for action, resource in unused_grants(self.statements[function], calls):
                if not _names_another_agent(resource):
                    unused.add((role, action))
        return unused


def _names_another_agent(resource: str) -> bool:
    others = "|".join(re.escape(name) for name in AGENTS if name != "audited")
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
        for role in ("api", "create", "get", "delete", "finalize")
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
    ("finalize", "sqs:SendMessage"): "its on-failure destination (EventInvokeConfig): the Lambda service's",
    ("finalize", "sqs:GetQueueAttributes"): "granted with the destination by CDK; the Lambda service's",
    ("finalize", "sqs:GetQueueUrl"): "granted with the destination by CDK; the Lambda service's",
}


def test_every_call_of_the_deployed_functions_is_allowed_by_their_policies(audit: Audit) -> None:
    assert set(audit.calls) == {f"rehearsal-{r}" for r in ("api", "finalize")} | {
        f"rehearsal-audited-{r}" for r in ("create", "get", "delete")
    }
    assert audit.denied() == []


def test_the_grants_no_call_uses_are_the_known_ones(audit: Audit) -> None:
    assert audit.unused() == set(EXPECTED_UNUSED)


def test_async_get_and_delete_are_granted_no_read_they_never_make(audit: Audit) -> None:
    for role in ("get", "delete"):
        allowed = audit.statements[f"rehearsal-audited-{role}"]
        assert not [s for s in allowed if s["Effect"] == "Allow" and "dynamodb:GetItem" in s["Action"]]
