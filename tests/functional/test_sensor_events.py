"""Sensors poked by events: S3 "Object Created" through EventBridge rules, on a stack whose schedules do
not fire within the module, so whatever ends a task here is an event (or the registration's poke)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from tests.functional.flyte_tasks import create_request
from tests.functional.sensors import BUCKET, FlytekitFileSensor, SensorHarness, sensor_stack, wait_for

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def events_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorHarness]:
    yield from sensor_stack(tmp_path_factory.mktemp("events"), schedule_period=3600)


def test_a_file_put_completes_a_waiting_sensor_through_its_event(events_only: SensorHarness) -> None:
    path = f"s3://{BUCKET}/incoming/a.csv"
    task_id = events_only.file_task(path)
    wait_for(lambda: events_only.pokes().get(task_id, 0) >= 1)  # the registration's poke: not there yet
    assert Phase(events_only.api.get_task(task_id).resource.phase) is Phase.RUNNING
    assert events_only.schedules("files")

    events_only.put("incoming/a.csv")
    resource = events_only.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED
    assert resource.message == "the condition is met"
    assert events_only.stack.sensor_triggers is not None
    assert events_only.stack.sensor_triggers.fired == 0  # no schedule fired: the event did it
    events_only.wait_until_no_schedules("files")


def test_a_condition_already_true_succeeds_at_registration(events_only: SensorHarness) -> None:
    events_only.put("ready/now.csv")

    resource = events_only.wait(events_only.file_task(f"s3://{BUCKET}/ready/now.csv"))

    assert Phase(resource.phase) is Phase.SUCCEEDED
    events_only.wait_until_no_schedules("files")


def test_one_event_pokes_only_the_sensor_waiting_for_its_key(events_only: SensorHarness) -> None:
    task_ids = [events_only.file_task(f"s3://{BUCKET}/many/{n}.csv") for n in range(200)]

    def all_poked_once() -> bool:
        pokes = events_only.pokes()  # one scan per check, not one per task
        return all(pokes.get(t, 0) == 1 for t in task_ids)

    wait_for(all_poked_once, timeout=60)
    poke_function = events_only.function("files", "poke")
    invocations = events_only.stack.lambdas.invocations[poke_function]

    events_only.put("many/117.csv")
    resource = events_only.wait(task_ids[117])

    assert Phase(resource.phase) is Phase.SUCCEEDED
    pokes = events_only.pokes()
    assert pokes[task_ids[117]] == 2
    assert all(pokes[t] == 1 for n, t in enumerate(task_ids) if n != 117)
    assert events_only.stack.lambdas.invocations[poke_function] == invocations + 1
    for task_id in task_ids:
        if task_id != task_ids[117]:
            events_only.api.delete_task(task_id)
    events_only.wait_until_no_schedules("files")


def test_delete_aborts_a_waiting_sensor_and_removes_its_schedule(events_only: SensorHarness) -> None:
    task_id = events_only.file_task(f"s3://{BUCKET}/aborted.csv")

    events_only.api.delete_task(task_id)
    events_only.put("aborted.csv")  # the event comes too late to matter
    time.sleep(0.5)

    resource = events_only.api.get_task(task_id).resource
    assert Phase(resource.phase) is Phase.ABORTED
    events_only.wait_until_no_schedules("files")


def test_a_sensor_task_through_the_adapter(events_only: SensorHarness) -> None:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc

    adapter = Adapter(events_only.stack.api_url, host="127.0.0.1", port=0).start()
    channel = grpc.insecure_channel(adapter.address)
    try:
        tasks = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        sensor = FlytekitFileSensor(name="flytesnacks.sensors.via_adapter")
        request = create_request(sensor, {"path": f"s3://{BUCKET}/adapter.csv"}, "sensor-adapter")
        resource_meta = tasks.CreateTask(request, timeout=10).resource_meta
        events_only.put("adapter.csv")

        def phase() -> Phase:
            get = agent_pb2.GetTaskRequest(task_type="sensor", resource_meta=resource_meta)
            return Phase(tasks.GetTask(get, timeout=10).resource.phase)

        wait_for(lambda: phase() is Phase.SUCCEEDED)
    finally:
        channel.close()
        adapter.stop()


def test_an_unknown_flytekit_sensor_is_not_found(events_only: SensorHarness) -> None:
    from serverless_agents.exceptions import AgentNotFound

    request = events_only.request(
        "sensor", inputs={"path": "x"}, outputs={}, custom={"sensor_module": "m", "sensor_name": "S"}
    )

    with pytest.raises(AgentNotFound, match=r"no sensor is deployed for m\.S"):
        events_only.api.create_task(request)
