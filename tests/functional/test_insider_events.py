"""Events end the wait: a job's event runs its task's get at once, never twice at a time, never lost.

Each stack polls every 60 s, so a task that ends well within the tests' 20 s bounds was woken by its event,
not by a poll. Events are put on the default bus as the platform would send them (moto's EventBridge
matches them against the agent's rules; the local stack delivers them to the agent's get function).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.agent import Phase
from serverless_agents.local.stack import LocalStack
from tests.functional.agents import JOBS, PlatformJob
from tests.functional.conftest import Harness
from tests.functional.test_ecs_agent import CLUSTER, EcsHarness, add, running_ecs

pytestmark = pytest.mark.functional

POLL_SECONDS = 60
#: Well under the poll wait: only an event can end a wait this soon.
SOON = 20

MANIFEST = f"""
[deployment]
name = "sa-events"

[agents.gated]
class = "tests.functional.agents:GatedJobAgent"
poll = {{ initial = {POLL_SECONDS}, factor = 1.0, cap = {POLL_SECONDS} }}
events = [{{ source = ["test.jobs"], detail-type = ["Job State Change"] }}]
event_job_id = "detail.job"

[agents.polled]
class = "tests.functional.agents:PolledGatedJobAgent"
poll = {{ initial = 1, factor = 1.0, cap = 1 }}
events = [{{ source = ["test.jobs"], detail-type = ["Job State Change"] }}]
event_job_id = "detail.job"
"""


def _until(condition: Callable[[], bool], what: str, timeout: float = SOON) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _put(stack: LocalStack, source: str, detail_type: str, detail: dict[str, Any]) -> None:
    entries = [{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}]
    assert stack.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def test_an_ecs_tasks_stopped_event_ends_its_wait_long_before_the_next_poll(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_ecs(tmp_path_factory.mktemp("ecs-events"), poll_seconds=POLL_SECONDS) as ecs:
        request = ecs.ecs_request(add, a=4, b=5)
        task_id = ecs.submit(request)
        arn = ecs.ecs_task_arn(task_id)
        ecs.run_container(arn, request.template, lambda inputs: {"o0": inputs["a"] + inputs["b"]})
        ecs.report(arn, "STOPPED", exit_code=0, stop_code="EssentialContainerExited")
        _stopped_event(ecs, arn)

        resource = ecs.wait(task_id, timeout=SOON)

        assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
        assert int(ecs.item(task_id)["polls"]["N"]) == 1  # one get: the event's


def _stopped_event(ecs: EcsHarness, task_arn: str) -> None:
    """ECS's `Task State Change` for a stopped task, as EventBridge receives it (the fields the rule and
    the agent read, and a few more)."""
    cluster_arn = ecs.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    detail = {
        "taskArn": task_arn,
        "clusterArn": cluster_arn,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
    }
    _put(ecs.stack, "aws.ecs", "ECS Task State Change", detail)


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


def _job(harness: Harness, task_id: str) -> tuple[str, PlatformJob]:
    _until(lambda: "metadata" in harness.item(task_id), f"task {task_id} created no job")
    job_id = json.loads(harness.item(task_id)["metadata"]["S"])["job_id"]
    return job_id, JOBS[job_id]


def _job_event(harness: Harness, job_id: str) -> None:
    _put(harness.stack, "test.jobs", "Job State Change", {"job": job_id})


def _wakes(harness: Harness, task_id: str) -> int:
    return int(harness.item(task_id).get("wakes", {}).get("N", 0))


def test_events_during_a_get_and_repeated_events_neither_run_a_second_get_nor_get_lost(
    gated: Harness,
) -> None:
    task_id = gated.submit(gated.request("gated_job", outputs={}))
    job_id, job = _job(gated, task_id)

    job.gate.clear()  # the next get holds until the gate opens
    _job_event(gated, job_id)
    _until(lambda: job.running == 1, "the event ran no get")
    # Two more events while that get runs, the second a repeat of the first.
    _job_event(gated, job_id)
    _job_event(gated, job_id)
    _until(lambda: _wakes(gated, task_id) == 3, "the events during the get were not counted")
    job.gate.set()

    # The events that came during the first get run one more get at once, not one each.
    _until(lambda: job.gets == 2, "an event that came during a get was lost")
    assert Phase(gated.api.get_task(task_id).resource.phase) is Phase.RUNNING
    job.done = True
    _job_event(gated, job_id)
    resource = gated.wait(task_id, timeout=SOON)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert job.gets == 3
    assert job.most_running == 1  # never two gets of one task at a time
    assert job.deleted == 0
    assert "wake" not in gated.item(task_id)  # an ended task leaves the index: no event finds it again


def test_a_burst_of_repeated_events_runs_the_get_once_per_wait_and_ends_the_task_once(gated: Harness) -> None:
    task_id = gated.submit(gated.request("gated_job", outputs={}))
    job_id, job = _job(gated, task_id)
    job.done = True

    for _ in range(5):
        _job_event(gated, job_id)
    resource = gated.wait(task_id, timeout=SOON)
    _until(lambda: gated.wait_execution("gated", task_id)["status"] == "SUCCEEDED", "execution still runs")

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert job.most_running == 1
    assert job.gets == 1  # the first get finds the job done and ends the task; the repeats find it ended
    assert int(gated.item(task_id)["polls"]["N"]) == job.gets


def test_an_event_for_an_ended_task_changes_nothing(gated: Harness) -> None:
    task_id = gated.submit(gated.request("gated_job", outputs={}))
    job_id, job = _job(gated, task_id)
    job.done = True
    _job_event(gated, job_id)
    gated.wait(task_id, timeout=SOON)
    ended = gated.item(task_id)

    _job_event(gated, job_id)
    time.sleep(1)  # the delivery loop runs every 0.1 s: the late event has been handled

    assert gated.item(task_id) == ended
    assert job.gets == 1


def test_without_events_polling_still_ends_the_task(gated: Harness) -> None:
    task_id = gated.submit(gated.request("gated_job_polled", outputs={}))
    _, job = _job(gated, task_id)
    _until(lambda: job.gets >= 2, "the polls did not run")
    job.done = True

    resource = gated.wait(task_id, timeout=SOON)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert _wakes(gated, task_id) == 0
