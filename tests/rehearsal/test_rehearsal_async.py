"""The synthesized template, deployed offline, runs an async task's life through the deployed resources only.

The CDK app is synthesized (bundling skipped), its code asset published and its template deployed into
moto's CloudFormation (`create_stack`), with small models for the resource types moto lacks
(tests/rehearsal/cfn_shims.py). Everything below then goes through what that deployment created: the api
function reached through API Gateway's deployed resources, methods and integrations; the functions as
CloudFormation created them (handler strings, memory, timeouts and environment from the template; this
checkout's code, run in-process by serverless_agents.local.lambda_dispatch); the deployed state machine
definitions, run by moto's Step Functions; the deployed tasks table and payload bucket; and the finalize
function reached through the deployed EventBridge rule with a Step Functions status-change event.

Covered: async success, an agent's own failure, a failure of the agent's calls (Cleanup runs delete once
and the FAILED status change does not run it again), and abort -> finalize -> delete exactly once, also
when EventBridge delivers the status change twice.

Every AWS call the functions make is checked against their deployed IAM policies in test_rehearsal_iam.py;
a sync agent's routes are rehearsed in test_rehearsal_sync.py, a sensor's in test_rehearsal_sensors.py,
the sweeper in test_rehearsal_sweeper.py.

What moto does not do, and where it is done or checked instead: check SigV4 signatures or IAM
(tests/infra/test_api.py checks AWS_IAM on every method; test_rehearsal_iam.py evaluates the recorded
calls), invoke Lambda proxy integrations, the Lambda targets of rules or fire scheduled rules and
Scheduler schedules (tests/rehearsal/deployment.py does, from the deployed methods, rules and schedules,
checking the functions' resource policies and the schedules' role), emit Step Functions status-change
events (built here from AWS's recorded example and DescribeExecution), keep the methods' request
validators and required path parameters (tests/infra/test_api.py), keep active tracing or SnapStart
(tests/infra/test_resources.py, test_snapstart.py), honour a bucket policy's conditions (recorded only:
cfn_shims.py).
"""

from __future__ import annotations

import json

import pytest

from serverless_agents.agent import Phase
from tests.rehearsal.cfn_shims import RECORDED
from tests.rehearsal.conftest import Deployed
from tests.rehearsal.lifecycle import (
    abort_running,
    create,
    get,
    job_record,
    status_change,
    wait_for,
    wait_for_execution,
)

pytestmark = pytest.mark.functional


def test_the_stack_deploys_every_resource_of_the_template(deployed: Deployed) -> None:
    template = deployed.synth.json["Resources"]
    assert set(deployed.stack.resources) == set(template)
    unnamed = [logical for logical, (kind, physical) in deployed.stack.resources.items() if not physical]
    # moto names no Lambda permission or API Gateway method (their Ref is not used by the template).
    assert {template[logical]["Type"] for logical in unnamed} <= {
        "AWS::Lambda::Permission",
        "AWS::ApiGateway::Method",
        "AWS::ApiGateway::Deployment",
    }
    alarms = [r for r in template.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(RECORDED["AWS::CloudWatch::Alarm"]) == len(alarms)
    resolved = json.dumps(RECORDED)
    # Every alarm names deployed resources.
    assert '{"Ref"' not in resolved
    assert '"Fn::' not in resolved


def test_deployed_functions_carry_the_templates_handler_and_environment(deployed: Deployed) -> None:
    for properties in deployed.synth.properties("AWS::Lambda::Function"):
        function = deployed.function(properties["FunctionName"])
        assert function["Handler"] == properties["Handler"]
        assert (function["MemorySize"], function["Timeout"]) == (
            properties["MemorySize"],
            properties["Timeout"],
        )
        variables = function["Environment"]["Variables"]
        assert set(variables) == set(properties["Environment"]["Variables"])
        assert variables["SA_TASKS_TABLE"] == deployed.stack.outputs["TasksTableName"]
        assert variables["SA_PAYLOAD_BUCKET"] == deployed.stack.outputs["PayloadBucketName"]
    # The code every function runs is the published asset's: handlers find the bundled manifest there.
    assert (deployed.task_root / "agents.toml").is_file()


def test_an_async_task_succeeds_through_the_deployment(deployed: Deployed) -> None:
    task_id = create(deployed, "example_job", "success", {"polls": 2})

    resource = wait_for(deployed, task_id, Phase.SUCCEEDED, Phase.FAILED)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert resource.message == "done"
    assert wait_for_execution(deployed, "job", task_id)["status"] == "SUCCEEDED"
    item = deployed.client("dynamodb").get_item(
        TableName=deployed.stack.outputs["TasksTableName"], Key={"id": {"S": task_id}}
    )["Item"]
    assert item["phase"]["S"] == "SUCCEEDED"
    assert job_record(deployed, task_id)["gets"] == 2
    assert job_record(deployed, task_id)["deletes"] == 0  # a job that finished is never deleted


def test_an_agents_own_failure_is_a_failed_task_and_no_delete(deployed: Deployed) -> None:
    task_id = create(deployed, "example_etl", "own-failure", {"polls": 1, "fail": True})

    resource = wait_for(deployed, task_id, Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED)

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message == "the example job failed (fail=true)"
    described = wait_for_execution(deployed, "etl", task_id)
    assert described["status"] == "FAILED"  # the definition's JobFailed
    assert job_record(deployed, task_id)["deletes"] == 0
    assert deployed.events.deliver(status_change(described))  # finalize runs, and deletes nothing
    assert job_record(deployed, task_id)["deletes"] == 0


def test_abort_finalizes_and_deletes_the_job_exactly_once(deployed: Deployed) -> None:
    # propeller's Abort -> DeleteTask -> DELETE /v1/tasks/{id}: StopExecution, the execution ABORTED.
    task_id = abort_running(deployed, "slowjob", "example_job_slow", "abort", {})

    event = status_change(wait_for_execution(deployed, "slowjob", task_id))
    assert deployed.events.deliver(event)  # the deployed rule matches, its target is finalize
    deployed.events.deliver(event)  # EventBridge delivers at least once

    assert job_record(deployed, task_id)["deletes"] == 1
    assert Phase(get(deployed, task_id).phase) is Phase.ABORTED


def test_a_failing_agent_call_is_cleaned_up_once_and_not_again_by_finalize(deployed: Deployed) -> None:
    task_id = create(deployed, "example_batch", "get-raises", {"raise_on": "get"})

    resource = wait_for(deployed, task_id, Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED)

    assert Phase(resource.phase) is Phase.FAILED
    assert "raise_on=get" in resource.message
    described = wait_for_execution(deployed, "batch", task_id)
    assert described["status"] == "FAILED"
    assert job_record(deployed, task_id)["deletes"] == 1  # the state machine's Cleanup
    assert deployed.events.deliver(status_change(described))  # finalize runs, and deletes nothing more
    assert job_record(deployed, task_id)["deletes"] == 1
