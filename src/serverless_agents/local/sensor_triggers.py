"""What EventBridge does for sensors, locally: fire their tasks' schedules, deliver their rules' events.

moto keeps EventBridge Scheduler schedules but never fires them, and its EventBridge rules match events
(S3 "Object Created" among them, from buckets with EventBridge notifications on) but cannot target Lambda.
So each sensor's rules target a local SQS queue, and this driver delivers what arrives there to the
sensor's poke function, and invokes each due schedule's target with its input: the two deliveries
EventBridge makes on AWS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serverless_agents.local.periodic import Periodic

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

    from serverless_agents.manifest import AgentSettings


@dataclass(frozen=True)
class SensorWiring:
    """One sensor's local plumbing: its poke function, schedule group and event queue."""

    settings: AgentSettings
    poke_function: str
    schedule_group: str
    queue_url: str | None


class SensorTriggers:
    def __init__(
        self,
        sensors: list[SensorWiring],
        lambda_client: LambdaClient,
        scheduler_client: EventBridgeSchedulerClient,
        sqs_client: SQSClient,
        *,
        interval: float = 0.1,
        schedule_period: float | None = None,
    ) -> None:
        self._sensors = sensors
        self._lambda = lambda_client
        self._scheduler = scheduler_client
        self._sqs = sqs_client
        #: Seconds between firings of every schedule, instead of its rate: a minute is long in a demo.
        self._schedule_period = schedule_period
        self._next_fire: dict[tuple[str, str], float] = {}
        self._loop = Periodic("sensor-triggers", interval, self._step)
        self.fired = 0

    def start(self) -> None:
        if self._sensors:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _step(self) -> None:
        for sensor in self._sensors:
            self.deliver_events(sensor)
            self.fire_due_schedules(sensor)

    def deliver_events(self, sensor: SensorWiring) -> int:
        if sensor.queue_url is None:
            return 0
        messages = self._sqs.receive_message(QueueUrl=sensor.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        for message in messages:
            response = self._lambda.invoke(
                FunctionName=sensor.poke_function, Payload=message["Body"].encode()
            )
            response["Payload"].read()
            if response.get("FunctionError"):
                continue  # left on the queue: EventBridge's retry policy would try again too
            self._sqs.delete_message(QueueUrl=sensor.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def fire_due_schedules(self, sensor: SensorWiring) -> int:
        now = time.monotonic()
        period = self._schedule_period or float(sensor.settings.schedule_seconds)
        listed = self._scheduler.list_schedules(GroupName=sensor.schedule_group)["Schedules"]
        group = sensor.schedule_group
        names = {s["Name"] for s in listed if s.get("GroupName", group) == group}
        for gone in [key for key in self._next_fire if key[0] == group and key[1] not in names]:
            del self._next_fire[gone]
        fired = 0
        for name in sorted(names):
            key = (sensor.schedule_group, name)
            due = self._next_fire.setdefault(key, now + period)  # a rate schedule first fires one period in
            if now < due:
                continue
            self._next_fire[key] = now + period
            try:
                target = self._scheduler.get_schedule(Name=name, GroupName=sensor.schedule_group)["Target"]
            except self._scheduler.exceptions.ResourceNotFoundException:
                continue  # removed since we listed it
            self._lambda.invoke(
                FunctionName=target["Arn"], InvocationType="Event", Payload=target.get("Input", "{}").encode()
            )
            fired += 1
        self.fired += fired
        return fired
