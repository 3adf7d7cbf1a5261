"""Test-only agents: the example job agent under other task types, so one manifest holds it with
different settings (fast polling, slow polling, a short execution timeout); one whose delete fails; a
sensor whose poke fails on request; a job announcing its changes as events, whose get can be held; and a job
needing no AWS (`TallyAgent`), which the stack and the in-process tier (`testing.LocalAgent`) both run."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

from serverless_agents import aws
from serverless_agents.agent import (
    AsyncAgentBase,
    BaseSensor,
    LogLink,
    Phase,
    Resource,
    ResourceMetadata,
    TaskContext,
)
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


class GatedJob(ResourceMetadata):
    job_id: str


class GatedJobAgent(AsyncAgentBase[GatedJob]):
    """A job on a pretend platform that announces its changes as EventBridge events (source
    `test.jobs`, the job's id at `detail.job`, declared in the manifest), whose get can be held at a gate:
    the test plays the platform. The local stack runs the functions in this process, so the platform is
    this module's `JOBS`; each job counts its gets and the most that ever ran at once."""

    task_type = "gated_job"
    metadata_type = GatedJob

    def create(self, task: TaskContext) -> GatedJob:
        job = GatedJob(job_id=f"job-{uuid.uuid4().hex[:12]}")
        JOBS[job.job_id] = PlatformJob()
        return job

    def get(self, metadata: GatedJob) -> Resource:
        job = JOBS[metadata.job_id]
        with job.lock:
            job.gets += 1
            job.running += 1
            job.most_running = max(job.most_running, job.running)
        try:
            job.gate.wait(timeout=60)
            if job.done:
                return Resource(Phase.SUCCEEDED, f"done after {job.gets} gets")
            return Resource(Phase.RUNNING, f"get {job.gets}")
        finally:
            with job.lock:
                job.running -= 1

    def delete(self, metadata: GatedJob) -> None:
        JOBS[metadata.job_id].deleted += 1

    def job_id(self, metadata: GatedJob) -> str:
        return metadata.job_id


class PolledGatedJobAgent(GatedJobAgent):
    """The same platform, under an agent polling every second."""

    task_type = "gated_job_polled"


@dataclass
class PlatformJob:
    done: bool = False
    gets: int = 0
    running: int = 0
    most_running: int = 0
    deleted: int = 0
    #: Open unless a test closes it: a get waits here until it opens again.
    gate: threading.Event = field(default_factory=lambda: _open_gate())
    lock: threading.Lock = field(default_factory=threading.Lock)


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


JOBS: dict[str, PlatformJob] = {}


class Tally(ResourceMetadata):
    job_id: str


#: The tally platform: job id -> its settings and the gets it answered. The local stack runs every Lambda
#: in the test's process, and `LocalAgent` calls the agent in it, so both see the same platform.
TALLIES: dict[str, dict[str, object]] = {}


class TallyAgent(AsyncAgentBase[Tally]):
    """A job needing no AWS: SUCCEEDED at its `polls`-th get (custom, default 3) with `square` = n².
    custom `raise_on` = "create" | "get" raises AgentError there; `busy` = true: get raises
    RetryableAgentError; `refused` = true: get meets a refused connection (urllib's URLError around it);
    `wrong` = true: the outputs miss the interface."""

    task_type = "tally"
    metadata_type = Tally

    def create(self, task: TaskContext) -> Tally:
        custom = task.custom
        if custom.get("raise_on") == "create":
            raise AgentError("the tally platform refused the job (raise_on=create)")
        job_id = uuid.uuid4().hex
        # A template's custom is a protobuf Struct: its numbers come back as floats.
        polls = int(custom.get("polls", 3))
        TALLIES[job_id] = {**custom, "n": task.inputs["n"], "polls": polls, "gets": 0, "deletes": 0}
        return Tally(job_id=job_id)

    def get(self, metadata: Tally) -> Resource:
        import urllib.error

        from serverless_agents.exceptions import RetryableAgentError

        job = TALLIES[metadata.job_id]
        if job.get("raise_on") == "get":
            raise AgentError("the tally platform lost\n the job (raise_on=get)")
        if job.get("busy"):
            raise RetryableAgentError("the tally platform is busy")
        if job.get("refused"):
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        gets = int(str(job["gets"])) + 1
        job["gets"] = gets
        polls = int(str(job["polls"]))
        links = [LogLink("Tally", f"https://tally.invalid/jobs/{metadata.job_id}")]
        if gets < polls:
            return Resource(Phase.RUNNING, f"{gets} of {polls}", links)
        n = int(str(job["n"]))
        outputs = {"sqaure": n * n} if job.get("wrong") else {"square": n * n}
        return Resource(Phase.SUCCEEDED, "tallied", links, outputs=outputs)

    def delete(self, metadata: Tally) -> None:
        job = TALLIES[metadata.job_id]
        job["deletes"] = int(str(job["deletes"])) + 1
