"""`serverless-agents check` (#21 item 4) against the rehearsal's deployed template: the deployment resolved
from the stack (DescribeStacks: its ApiUrl output; the bucket its FileSensor's deployed rule watches), a
canary task of each built-in kind run through the deployed API with the project's client (its requests
signed with SigV4 for execute-api, as API Gateway's IAM auth requires), every step one line, the test
object removed, and a task it started cancelled when a step fails. It refuses a stack the CDK app did not
make, and one that does not exist, before sending anything."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from serverless_agents.agent import Phase
from serverless_agents.api.client import ApiClient
from serverless_agents.cli import main
from tests.rehearsal.conftest import WATCHED_BUCKET, Deployed
from tests.rehearsal.deployment import REGION, STACK, ApiGateway
from tests.rehearsal.iam_audit import allowed, role_statements
from tests.rehearsal.lifecycle import get, job_record, status_change, wait_for_execution

pytestmark = pytest.mark.functional


class Gateway:
    """What the client's connection pool sends, handed to the rehearsal's API Gateway (deployment.py): the
    stage's path left out, as API Gateway does; every request's headers kept, to check the signature."""

    def __init__(self, api: ApiGateway) -> None:
        self.api = api
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method: str, url: str, body: bytes | None = None, **kwargs: Any) -> Any:
        self.sent.append((method, url, dict(kwargs.get("headers") or {})))
        path = urlsplit(url).path.removeprefix(f"/{self.api.stage}")
        answer = self.api.request(method, path, json.loads(body) if body else None)
        return SimpleNamespace(status=answer.status, data=answer.body.encode())


def check(deployed: Deployed, deployment: Any, **kwargs: Any) -> tuple[int, list[str], Gateway]:
    from serverless_agents.deployment.check import Check, Report

    gateway = Gateway(deployed.api)
    api = ApiClient(deployment.api_url, pool=gateway)  # type: ignore[arg-type]
    report = Report(lambda line: None)
    failed = Check(api, deployed.client("s3"), deployment, report, **{"timeout": 60, **kwargs})()
    return failed, report.lines, gateway


def test_check_runs_each_canary_through_the_deployed_stack(deployed: Deployed) -> None:
    from serverless_agents.deployment.check import CANARY_PREFIX, Deployment, from_stack

    first_call = len(deployed.calls.calls)
    deployment = from_stack(STACK, deployed.client("cloudformation"), deployed.client("events"))
    assert deployment == Deployment(deployed.stack.outputs["ApiUrl"], WATCHED_BUCKET)

    failed, lines, gateway = check(deployed, deployment)

    assert failed == 0, lines
    assert lines[0].startswith(f"ok   ListAgents at {deployment.api_url}: job (example_job, async)")
    assert any(line.startswith("ok   async job job: task ") and "SUCCEEDED" in line for line in lines), lines
    assert 'ok   sync echo echo: SUCCEEDED: {"text": "check-' in "\n".join(lines)
    assert any(line.startswith(f"ok   FileSensor files on s3://{WATCHED_BUCKET}/") for line in lines), lines
    assert lines[-1].startswith(f"ok   removed s3://{WATCHED_BUCKET}/{CANARY_PREFIX}")
    assert len(lines) == 5
    # Nothing left behind in the watched bucket; every request to the API signed for execute-api.
    listed = deployed.client("s3").list_objects_v2(Bucket=WATCHED_BUCKET, Prefix=CANARY_PREFIX)
    assert listed.get("KeyCount", 0) == 0
    host = urlsplit(deployment.api_url).hostname
    assert {urlsplit(url).hostname for _, url, _ in gateway.sent} == {host}
    for _, _, headers in gateway.sent:
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        assert f"/{REGION}/execute-api/aws4_request" in headers["Authorization"]
    # What the deployed functions did for it, their deployed policies allowed.
    calls = deployed.calls.calls[first_call:]
    iam, lambdas = deployed.client("iam"), deployed.client("lambda")
    statements = {f: role_statements(iam, lambdas, f) for f in {c.function for c in calls}}
    assert {c.function for c in calls} >= {"rehearsal-api", "rehearsal-job-get", "rehearsal-files-poke"}
    assert [c for c in calls if not allowed(statements[c.function], c)] == []


def test_check_cancels_the_task_it_started_when_a_step_fails(deployed: Deployed) -> None:
    from serverless_agents.deployment.check import Deployment

    deployment = Deployment(deployed.stack.outputs["ApiUrl"])  # no sensor step

    failed, lines, _ = check(deployed, deployment, job_polls=1_000_000, timeout=1)

    assert failed == 1, lines
    (timed_out,) = (line for line in lines if line.startswith("FAIL async job: task "))
    task_id = timed_out.split()[4]
    assert "still RUNNING after 1 s" in timed_out
    assert f"ok   cancelled task {task_id} (job (example_job))" in lines
    assert "skip FileSensor: no watched bucket known (--sensor-bucket)" in lines
    # The cancel stopped its execution; its status change ends the task, as EventBridge would deliver it.
    # ABORTED as a rule; FAILED when a get ran between the abort's request and its StopExecution (it finds
    # the abort requested and ends the execution: CI's loaded machine met it) or when the stop met a step
    # in flight (moto 5.2.5: lifecycle.abort_running). Either way the task ends ABORTED, its job deleted once.
    ended = wait_for_execution(deployed, "job", task_id)
    assert ended["status"] in ("ABORTED", "FAILED"), ended
    assert deployed.events.deliver(status_change(ended))
    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED
    assert job_record(deployed, task_id)["deletes"] == 1


def test_check_refuses_a_stack_that_is_not_a_serverless_agents_deployment(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"ApiUrl": {"Value": "x"}}}
    cloudformation = deployed.client("cloudformation")
    cloudformation.create_stack(StackName="someone-elses", TemplateBody=json.dumps(template))
    before = deployed.client("dynamodb").scan(TableName=deployed.stack.outputs["TasksTableName"])["Count"]

    code = main(["check", "--stack", "someone-elses", "--region", REGION])

    assert code == 2
    err = capsys.readouterr().err
    assert "stack 'someone-elses' is not a serverless-agents deployment" in err
    assert "refusing to run against it" in err
    after = deployed.client("dynamodb").scan(TableName=deployed.stack.outputs["TasksTableName"])["Count"]
    assert after == before  # no task started anywhere


def test_check_refuses_a_stack_that_does_not_exist(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--stack", "no-such-stack", "--region", REGION]) == 2
    assert "stack 'no-such-stack'" in capsys.readouterr().err
