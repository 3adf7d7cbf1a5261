"""What EventBridge does for agents, locally: fire sensor tasks' schedules, deliver rules' events.

moto keeps EventBridge Scheduler schedules but never fires them, and its EventBridge rules match events
(S3 "Object Created" among them, from buckets with EventBridge notifications on; ECS task state changes
put as EventBridge would) but cannot target Lambda. So each agent's rules target a local SQS queue
(`RuleQueue`), and this driver delivers what arrives there to the rules' target function (a sensor's poke
function, an async agent's get function), and invokes each due schedule's target with its input: the two
deliveries EventBridge makes on AWS. The matching itself is moto's, for every rule alike.
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

    from serverless_agents.deployment.manifest import AgentSettings


@dataclass(frozen=True)
class RuleQueue:
    """Where one agent's rules put the events they match, and the function those events are for."""

    queue_url: str
    target_function: str


@dataclass(frozen=True)
class SensorWiring:
    """One sensor's local plumbing: its poke function and schedule group."""

    settings: AgentSettings
    poke_function: str
    schedule_group: str


class SensorTriggers:
    def __init__(
        self,
        sensors: list[SensorWiring],
        rule_queues: list[RuleQueue],
        lambda_client: LambdaClient,
        scheduler_client: EventBridgeSchedulerClient,
        sqs_client: SQSClient,
        *,
        interval: float = 0.1,
        schedule_period: float | None = None,
    ) -> None:
        self._sensors = sensors
        self._rule_queues = rule_queues
        self._lambda = lambda_client
        self._scheduler = scheduler_client
        self._sqs = sqs_client
        #: Seconds between firings of every schedule, instead of its rate: a minute is long in a demo.
        self._schedule_period = schedule_period
        self._next_fire: dict[tuple[str, str], float] = {}
        self._loop = Periodic("sensor-triggers", interval, self._step)
        self.fired = 0

    def start(self) -> None:
        if self._sensors or self._rule_queues:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _step(self) -> None:
        for queue in self._rule_queues:
            self.deliver_events(queue)
        for sensor in self._sensors:
            self.fire_due_schedules(sensor)

    def deliver_events(self, queue: RuleQueue) -> int:
        messages = self._sqs.receive_message(QueueUrl=queue.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        for message in messages:
            response = self._lambda.invoke(
                FunctionName=queue.target_function, Payload=message["Body"].encode()
            )
            response["Payload"].read()
            if response.get("FunctionError"):
                continue  # left on the queue: EventBridge's retry policy would try again too
            self._sqs.delete_message(QueueUrl=queue.queue_url, ReceiptHandle=message["ReceiptHandle"])
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
