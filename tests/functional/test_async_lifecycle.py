"""An async task's whole life through the HTTP API, the real state machine and the real handlers."""

from __future__ import annotations

import json
import time

import pytest

from serverless_agents.agent import Phase
from serverless_agents.flyte.literals import decode_literal_map
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional


def test_job_succeeds_with_its_outputs(harness: Harness) -> None:
    request = harness.request(
        inputs={"greeting": "hi", "n": 3, "ratio": 0.5, "ok": True},
        outputs={"greeting": str, "n": int, "ratio": float, "ok": bool, "polls": int},
        custom={"polls": 3},
    )
    task_id = harness.submit(request)

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    outputs = decode_literal_map(resource.outputs, request.template.interface.outputs.variables)
    assert outputs == {"greeting": "hi", "n": 3, "ratio": 0.5, "ok": True, "polls": 3}
    assert [link.name for link in resource.log_links] == [
        "Example job",
        "Step Functions execution",
        "Lambda logs (CloudWatch)",
    ]
    assert task_id in resource.log_links[1].uri
    assert "$252Faws$252Flambda$252Fsa-test-job" in resource.log_links[2].uri
    assert resource.custom_info["polls"] == 3
    assert resource.custom_info["state_transitions"] == 3 + 3 * 3  # Started?, Create, Ended?; 3 per poll
    assert resource.custom_info["execution_arn"].endswith(f":{task_id}")
    assert harness.wait_execution("job", task_id)["status"] == "SUCCEEDED"
    assert harness.job(task_id)["deletes"] == 0  # a job that finished on its own is never deleted


def test_job_that_fails_on_its_own_is_failed_and_not_deleted(harness: Harness) -> None:
    task_id = harness.submit(harness.request(custom={"polls": 1, "fail": True}))

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "fail=true" in resource.message
    assert harness.wait_execution("job", task_id)["status"] == "FAILED"
    time.sleep(0.5)  # give finalize (driven by the FAILED status change) time to act wrongly
    assert harness.job(task_id)["deletes"] == 0


def test_create_raising_fails_the_task_with_its_message(harness: Harness) -> None:
    jobs_before = harness.job_count()
    task_id = harness.submit(harness.request(custom={"raise_on": "create"}))

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "AgentError" in resource.message
    assert "raise_on=create" in resource.message
    assert harness.wait_execution("job", task_id)["status"] == "FAILED"
    assert harness.job_count() == jobs_before  # no job was made, so there is nothing to leak


def test_get_raising_fails_the_task_and_deletes_the_job_once(harness: Harness) -> None:
    task_id = harness.submit(harness.request(custom={"raise_on": "get", "polls": 5}))

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "raise_on=get" in resource.message
    assert harness.wait_execution("job", task_id)["status"] == "FAILED"
    time.sleep(0.5)  # finalize sees the FAILED execution too; it must not delete again
    assert harness.job(task_id)["deletes"] == 1


@pytest.mark.parametrize(
    ("role", "fault"), [("get", "throttle"), ("get", "crash"), ("create", "service_error")]
)
def test_transient_lambda_errors_are_retried_to_success(harness: Harness, role: str, fault: str) -> None:
    function = harness.function("job", role)
    harness.stack.lambdas.inject_fault(function, fault, times=2)  # type: ignore[arg-type]
    before = harness.stack.lambdas.invocations[function]

    task_id = harness.submit(harness.request(custom={"polls": 2}))
    resource = harness.wait(task_id, timeout=60)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert harness.stack.lambdas.invocations[function] - before >= 3  # two failures, then the real call
    assert harness.job(task_id)["deletes"] == 0


def test_delete_mid_poll_aborts_and_deletes_the_job_exactly_once(harness: Harness) -> None:
    task_id = harness.submit(harness.request("example_job_slow", custom={"polls": 1000}))
    harness.wait_for_phase(task_id, Phase.RUNNING)
    while harness.job(task_id)["gets"] < 1:
        time.sleep(0.1)

    harness.api.delete_task(task_id)
    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.ABORTED
    assert harness.wait_execution("slowjob", task_id)["status"] == "ABORTED"
    harness.api.delete_task(task_id)  # a repeated DeleteTask changes nothing
    time.sleep(0.5)  # and neither does the driver's next round
    job = harness.job(task_id)
    assert job["deletes"] == 1
    gets = job["gets"]
    time.sleep(1.5)
    assert harness.job(task_id)["gets"] == gets  # polling stopped


def test_execution_timeout_fails_the_task_and_deletes_the_job_once(harness: Harness) -> None:
    task_id = harness.submit(harness.request("example_job_short_timeout", custom={"polls": 1000}))

    resource = harness.wait(task_id, timeout=30)

    assert Phase(resource.phase) is Phase.FAILED
    assert "timed out" in resource.message
    assert harness.wait_execution("shortjob", task_id)["status"] == "TIMED_OUT"
    time.sleep(0.5)
    assert harness.job(task_id)["deletes"] == 1


def test_repeated_create_returns_the_same_task_and_starts_one_job(harness: Harness) -> None:
    request = harness.request(custom={"polls": 2})
    jobs_before = harness.job_count()

    first = harness.api.create_task(request)
    second = harness.api.create_task(request)
    harness.wait(json.loads(first.resource_meta)["task_id"])
    third = harness.api.create_task(request)  # after it finished, too

    assert first.resource_meta == second.resource_meta == third.resource_meta
    task_id = json.loads(first.resource_meta)["task_id"]
    assert len(harness.executions("job", task_id)) == 1
    assert harness.job_count() == jobs_before + 1


def test_a_new_retry_attempt_is_a_new_task(harness: Harness) -> None:
    request = harness.request(custom={"polls": 1})
    retry = type(request)()
    retry.CopyFrom(request)
    retry.task_execution_metadata.task_execution_id.retry_attempt = 1

    assert harness.submit(request) != harness.submit(retry)


def test_oversized_inputs_and_outputs_travel_through_s3_intact(harness: Harness) -> None:
    big = "x" * 300_000 + "end"
    request = harness.request(inputs={"blob": big}, outputs={"blob": str, "polls": int}, custom={"polls": 1})
    task_id = harness.submit(request)

    resource = harness.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_literal_map(resource.outputs, request.template.interface.outputs.variables)["blob"] == big
    (execution,) = harness.executions("job", task_id)
    execution_input = json.loads(
        harness.stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])[
            "input"
        ]
    )
    # Under the agent's own prefixes: the only keys its functions (and IAM) let it read and write.
    assert (
        execution_input["request_ref"] == f"s3://{harness.stack.payload_bucket}/requests/job/{task_id}.json"
    )
    assert "request" not in execution_input
    item = harness.item(task_id)
    assert item["outputs_ref"]["S"] == f"s3://{harness.stack.payload_bucket}/outputs/job/{task_id}.json"
    assert "outputs" not in item
