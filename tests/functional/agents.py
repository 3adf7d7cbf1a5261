"""Test-only agents: the example job agent under other task types, so one manifest holds it with
different settings (fast polling, slow polling, a short execution timeout); and a sensor whose poke
fails on request."""

from __future__ import annotations

from serverless_agents import aws
from serverless_agents.agent import BaseSensor
from serverless_agents.examples import JobAgent


class SlowJobAgent(JobAgent):
    task_type = "example_job_slow"


class ShortTimeoutJobAgent(JobAgent):
    task_type = "example_job_short_timeout"


class MoodySensor(BaseSensor):
    """Met when the object `s3://<bucket>/<key>` says "yes"; its poke raises while it says "raise"."""

    task_type = "moody_sensor"

    def poke(self, bucket: str, key: str) -> bool:
        client = aws.client("s3")
        try:
            mood = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except client.exceptions.NoSuchKey:
            return False
        if mood == "raise":
            raise RuntimeError("the moody platform is down")
        return mood == "yes"
