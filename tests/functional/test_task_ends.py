"""Every task ends: faults that used to leave a task RUNNING forever, on the local stack (the real ASL, the
real handlers, the status-change driver and the sweeper on their schedules).

An agent whose delete always fails, after its get failed or after DeleteTask: the task ends FAILED once
its bound (`end_within`, 2 s here) has passed, GetTask (through the gRPC adapter, as flytepropeller calls
it: flyteplugins/go/tasks/plugins/webapi/agent/plugin.go, Get) shows the ending with the job named, the
sweeper counts it (Powertools metric), and delete is never called again. A job that finished is never
deleted, nor ended by the bound; a delete that fails once then works runs once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Powertools' Logger keeps the stdout it finds when made: make it now, not inside a test's capsys.
import serverless_agents.handlers.observability  # noqa: F401
from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.aws.tasks_table import AsyncTask, TasksTable
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from serverless_agents.runtime.sweeper import ENDED_BY_BOUND_METRIC
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional

END_WITHIN = 2
MANIFEST = f"""
[deployment]
name = "sa-ends"

[agents.stubborn]
class = "tests.functional.agents:StubbornJobAgent"
poll = {{ initial = 1, factor = 1.0, cap = 1 }}
end_within = {END_WITHIN}

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = {{ initial = 0, factor = 1.0, cap = 0 }}
end_within = {END_WITHIN}
"""
# The same stubborn agent with a bound far beyond these tests: what happens before the bound.
PATIENT = """
[agents.patient]
class = "tests.functional.agents:PatientJobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }
end_within = 3600
"""


@pytest.fixture(scope="module")
def ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST + PATIENT)
    with LocalStack(manifest, driver_interval=0.1, sweep_interval=0.5) as stack:
        yield Harness(stack)


@pytest.fixture(scope="module")
def propeller(ends: Harness) -> Iterator[FlyteClient]:
    adapter = Adapter(ends.stack.api_url, host="127.0.0.1", port=0).start()
    client = FlyteClient(adapter.address)
    yield client
    client.channel.close()
    adapter.stop()


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools prints its metrics (EMF) to stdout, as on Lambda, where CloudWatch reads them."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def emitted(output: str, metric: str) -> float:
    """The sum of `metric` over the EMF documents printed."""
    total = 0.0
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        value = json.loads(line).get(metric, 0)
        total += sum(value) if isinstance(value, list) else value
    return total


def job_of(harness: Harness, task_id: str) -> dict[str, Any]:
    while "metadata" not in harness.item(task_id):
        time.sleep(0.05)
    return harness.job(task_id)


def open_tasks(harness: Harness) -> list[str]:
    table = TasksTable(harness.stack.tasks_table, client=harness.stack.client("dynamodb"))
    return table.overdue(AsyncTask, time.time() + 10**9)


def ended_by_bound(harness: Harness, task_id: str, resource: Any) -> None:
    """What every task ended by its bound shows: FAILED, naming its job, never cleaned up again."""
    item = harness.item(task_id)
    job_id = json.loads(item["metadata"]["S"])["job_id"]
    assert Phase(resource.phase) is Phase.FAILED, resource.message
    assert "the agent's delete could not be confirmed within end_within=2s" in resource.message
    assert f'job {{"job_id":"{job_id}"' in resource.message
    assert resource.message.endswith("may still be running")
    assert item["cleanup"]["S"] == "unconfirmed"
    assert float(item["end_by"]["N"]) <= float(item["updated_at"]["N"])  # ended after its bound, not before
    assert task_id not in open_tasks(harness)
    job = harness.job(task_id)
    assert job["deletes"] == 0
    attempts = job["delete_attempts"]
    assert attempts >= 1
    assert harness.stack.driver is not None
    harness.stack.driver.sweep()
    time.sleep(1.0)  # and the driver's next retries of finalize
    assert harness.job(task_id)["delete_attempts"] == attempts  # no delete after the ending


def test_get_and_delete_always_failing_end_the_task_at_its_bound(
    ends: Harness, propeller: FlyteClient, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    request = ends.request("example_job_stubborn", custom={"raise_on": "get", "polls": 5})
    meta = propeller.create(request)
    task_id = json.loads(meta)["task_id"]

    resource = propeller.wait(meta, "example_job_stubborn", lambda line: None, timeout=30)

    assert "AgentError" in resource.message
    assert "raise_on=get" in resource.message  # why cleanup ran: get failed
    ended_by_bound(ends, task_id, resource)
    assert ends.wait_execution("stubborn", task_id)["status"] == "FAILED"
    assert emitted(capsys.readouterr().out, ENDED_BY_BOUND_METRIC) >= 1


def test_delete_always_failing_after_delete_task_ends_the_task_at_its_bound(ends: Harness) -> None:
    task_id = ends.submit(ends.request("example_job_stubborn", custom={"polls": 1000}))
    ends.wait_for_phase(task_id, Phase.RUNNING)
    job_of(ends, task_id)

    ends.api.delete_task(task_id)
    resource = ends.wait(task_id)

    assert resource.message.startswith("aborted (DeleteTask or StopExecution)")
    ended_by_bound(ends, task_id, resource)
    assert ends.wait_execution("stubborn", task_id)["status"] == "ABORTED"


def test_get_always_failing_ends_the_task_and_deletes_its_job_once(ends: Harness) -> None:
    task_id = ends.submit(ends.request(custom={"raise_on": "get", "polls": 5}))

    resource = ends.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "raise_on=get" in resource.message
    assert "could not be confirmed" not in resource.message
    assert ends.wait_execution("job", task_id)["status"] == "FAILED"
    assert task_id not in open_tasks(ends)  # the bound can never touch it
    assert ends.stack.driver is not None
    ends.stack.driver.sweep()
    assert ends.job(task_id)["deletes"] == 1
    assert ends.api.get_task(task_id).resource.message == resource.message


def test_get_crashing_through_every_retry_ends_the_task_retryable_and_deletes_its_job_once(
    ends: Harness,
) -> None:
    # The first get and the Get state's three retries (statemachines/async_agent.asl.json): then Catch.
    ends.stack.lambdas.inject_fault(ends.function("job", "get"), "crash", times=4)
    task_id = ends.submit(ends.request(custom={"polls": 5}))

    resource = ends.wait(task_id)

    assert Phase(resource.phase) is Phase.RETRYABLE_FAILED  # transient trouble: Flyte may retry the task
    assert resource.message.startswith("Runtime.ExitError")
    job = ends.job(task_id)
    assert (job["gets"], job["deletes"]) == (0, 1)
    assert task_id not in open_tasks(ends)


def test_a_delete_that_fails_once_runs_once_and_the_task_ends_as_usual(ends: Harness) -> None:
    task_id = ends.submit(
        ends.request("example_job_patient", custom={"raise_on": "get", "delete_failures": 1})
    )

    resource = ends.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "raise_on=get" in resource.message
    assert "could not be confirmed" not in resource.message
    job = ends.job(task_id)
    assert (job["delete_attempts"], job["deletes"]) == (2, 1)  # the Cleanup state's, then finalize's
    assert task_id not in open_tasks(ends)


def test_a_job_that_finished_is_never_deleted_nor_ended_by_its_bound(ends: Harness) -> None:
    task_id = ends.submit(ends.request(custom={"polls": 1}))

    resource = ends.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert task_id not in open_tasks(ends)
    assert ends.stack.driver is not None
    ends.stack.driver.sweep()
    assert ends.job(task_id)["deletes"] == 0
    assert Phase(ends.api.get_task(task_id).resource.phase) is Phase.SUCCEEDED
