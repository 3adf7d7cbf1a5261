"""Test-only agents: the example job agent under other task types, so one manifest holds it with
different settings (fast polling, slow polling, a short execution timeout); one whose delete fails; and a
sensor whose poke fails on request."""

from __future__ import annotations

import logging

from serverless_agents import aws
from serverless_agents.agent import BaseSensor, Resource, TaskContext
from serverless_agents.examples import JobAgent, JobMetadata
from serverless_agents.exceptions import AgentError


class SlowJobAgent(JobAgent):
    task_type = "example_job_slow"


class ShortTimeoutJobAgent(JobAgent):
    task_type = "example_job_short_timeout"


chatter = logging.getLogger("chatty.platform")


class ChattyJobAgent(JobAgent):
    """The example job, logging what it does as an agent's own code does (a stdlib logger, a client
    library's), each line naming its task's `custom.tag`: GetTaskLogs answers each task its own lines."""

    task_type = "example_job_chatty"

    def create(self, task: TaskContext) -> JobMetadata:
        metadata = super().create(task)
        job = self._load(metadata)
        job["tag"] = str(task.custom.get("tag", ""))
        self._save(metadata, job)
        chatter.info("created job for %s", job["tag"])
        return metadata

    def get(self, metadata: JobMetadata) -> Resource:
        resource = super().get(metadata)
        chatter.info("polled job for %s: %s", self._load(metadata)["tag"], resource.message)
        return resource


class ChattyChainAgent(ChattyJobAgent):
    """The chatty job under a manifest that continues its tasks as new executions every few polls."""

    task_type = "example_job_chatty_chain"


class StubbornJobAgent(JobAgent):
    """The example job whose delete fails its first `custom.delete_failures` attempts (-1, the default:
    every one), as a platform that cannot cancel would. Its job record counts `delete_attempts`."""

    task_type = "example_job_stubborn"

    def create(self, task: TaskContext) -> JobMetadata:
        metadata = super().create(task)
        job = self._load(metadata)
        job |= {"delete_failures": int(task.custom.get("delete_failures", -1)), "delete_attempts": 0}
        self._save(metadata, job)
        return metadata

    def delete(self, metadata: JobMetadata) -> None:
        job = self._load(metadata)
        job["delete_attempts"] += 1
        self._save(metadata, job)
        if job["delete_failures"] < 0 or job["delete_attempts"] <= job["delete_failures"]:
            raise AgentError("the example platform cannot cancel jobs right now")
        super().delete(metadata)


class PatientJobAgent(StubbornJobAgent):
    task_type = "example_job_patient"


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


class ChainJobAgent(JobAgent):
    """The example job under an agent whose executions continue as new ones after a few polls."""

    task_type = "example_job_chain"


class ChainTimeoutJobAgent(JobAgent):
    """The example job under an agent with a short execution_timeout and a chain of one-poll executions."""

    task_type = "example_job_chain_timeout"
