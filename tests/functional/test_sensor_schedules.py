"""Sensors poked by their schedules (fired every half second here), and their endings: timeout, a poke
that raises and recovers, pokes that keep raising."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from serverless_agents.agent import Phase
from tests.functional.sensors import BUCKET, SensorHarness, sensor_stack, wait_for

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorHarness]:
    yield from sensor_stack(tmp_path_factory.mktemp("scheduled"), schedule_period=0.5)


def test_the_schedule_completes_a_sensor_without_an_event(scheduled: SensorHarness) -> None:
    scheduled.stack.create_bucket("quiet", eventbridge=False)  # its writes send no events
    task_id = scheduled.file_task("s3://quiet/file.csv")
    wait_for(lambda: scheduled.pokes().get(task_id, 0) >= 1)

    scheduled.stack.client("s3").put_object(Bucket="quiet", Key="file.csv", Body=b"x")
    resource = scheduled.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED
    assert scheduled.stack.sensor_triggers is not None
    assert scheduled.stack.sensor_triggers.fired > 0
    scheduled.wait_until_no_schedules("files")


def test_a_sensor_past_its_timeout_fails_saying_so(scheduled: SensorHarness) -> None:
    task_id = scheduled.file_task(f"s3://{BUCKET}/never.csv", timeout=datetime.timedelta(seconds=1))

    resource = scheduled.wait(task_id)

    assert Phase(resource.phase) is Phase.FAILED
    assert "timed out" in resource.message
    scheduled.wait_until_no_schedules("files")


def test_a_poke_that_raises_is_tried_again_and_can_recover(scheduled: SensorHarness) -> None:
    scheduled.put("mood-1", b"raise")
    task_id = scheduled.moody_task("mood-1")
    wait_for(lambda: "poke failed (1 of 3)" in scheduled.api.get_task(task_id).resource.message)

    scheduled.put("mood-1", b"yes")
    resource = scheduled.wait(task_id)

    assert Phase(resource.phase) is Phase.SUCCEEDED
    scheduled.wait_until_no_schedules("moody")


def test_pokes_raising_too_often_in_a_row_fail_the_task_with_the_error(scheduled: SensorHarness) -> None:
    scheduled.put("mood-2", b"raise")

    resource = scheduled.wait(scheduled.moody_task("mood-2"))

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message == "poke failed 3 times in a row: RuntimeError: the moody platform is down"
    scheduled.wait_until_no_schedules("moody")
