"""Shared by the sensor tests: a manifest with a FileSensor and a test sensor, and a harness that
creates sensor tasks the way Flyte does and looks at schedules and poke counts."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flytekit.sensor.file_sensor import FileSensor as FlytekitFileSensor

from serverless_agents.deployment.naming import sensor_schedule_group
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.flyte_tasks import create_request

BUCKET = "landing"
MANIFEST = f"""
[deployment]
name = "sa-sensors"

[agents.files]
class = "serverless_agents.agents.file_sensor:FileSensor"
schedule = "rate(1 minute)"

[[agents.files.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = {{ bucket = {{ name = ["{BUCKET}"] }} }}

[agents.moody]
class = "tests.functional.agents:MoodySensor"
schedule = "rate(1 minute)"
max_poke_errors = 3
"""
_runs = iter(range(100_000))


class SensorHarness(Harness):
    def file_task(self, path: str, timeout: datetime.timedelta | None = None) -> str:
        sensor = FlytekitFileSensor(name=f"flytesnacks.sensors.file{next(_runs)}", timeout=timeout)
        return self.submit(create_request(sensor, {"path": path}, f"sensor-{next(_runs)}"))

    def moody_task(self, key: str) -> str:
        request = self.request(
            "moody_sensor",
            inputs={"bucket": BUCKET, "key": key},
            outputs={},
            execution=f"moody-{next(_runs)}",
        )
        return self.submit(request)

    def put(self, key: str, body: bytes = b"data") -> None:
        self.stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)

    def schedules(self, agent: str) -> list[str]:
        group = sensor_schedule_group(self.stack.deployment, agent)
        listed = self.stack.client("scheduler").list_schedules(GroupName=group)["Schedules"]
        return [s["Name"] for s in listed if s["GroupName"] == group]

    def wait_until_no_schedules(self, agent: str) -> None:
        """An ending writes the task's phase first and removes its schedule next: wait for the second."""
        wait_for(lambda: self.schedules(agent) == [])

    def pokes(self) -> dict[str, int]:
        items = self.stack.client("dynamodb").scan(TableName=self.stack.tasks_table)["Items"]
        return {item["id"]["S"]: int(item.get("pokes", {}).get("N", 0)) for item in items}


def sensor_stack(tmp_path: Path, schedule_period: float | None) -> Iterator[SensorHarness]:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1, schedule_period=schedule_period) as stack:
        stack.create_bucket(BUCKET)
        yield SensorHarness(stack)


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
