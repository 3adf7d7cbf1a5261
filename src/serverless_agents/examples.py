"""Example agents for the demo and the tests: a job on a pretend platform, and an echo.

`JobAgent`'s "platform" keeps each job as a JSON object in the payload bucket, under the agent's own
`state/` prefix (its functions may touch no other agent's keys), so the job outlives the Lambda that
created it (as a real warehouse query would) and a test can count how often `delete` ran.
The template's `custom` steers it:

    {"polls": 3}                 finish after three gets
    {"polls": 3, "fail": true}   end FAILED instead
    {"raise_on": "create"}       create (or "get", "delete") raises AgentError

The job's outputs are its inputs, for every name the task interface declares, plus `polls`. The job keeps
the inputs as Flyte literals (protobuf JSON), not as decoded values, so that every type comes back as it
went in: a datetime as a datetime, a duration as a timedelta, an int in a dict as an int.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from serverless_agents import aws
from serverless_agents.agent import (
    AsyncAgentBase,
    LogLink,
    Phase,
    Resource,
    ResourceMetadata,
    SyncAgentBase,
    TaskContext,
)
from serverless_agents.aws.payloads import payload_key
from serverless_agents.exceptions import AgentError
from serverless_agents.flyte import wire
from serverless_agents.runtime.settings import current_settings


class JobMetadata(ResourceMetadata):
    job_id: str
    bucket: str


class JobAgent(AsyncAgentBase[JobMetadata]):
    task_type = "example_job"
    metadata_type = JobMetadata

    def create(self, task: TaskContext) -> JobMetadata:
        settings = dict(task.custom)
        if settings.get("raise_on") == "create":
            raise AgentError("the example platform refused the job (raise_on=create)")
        runtime = current_settings()
        # The id starts with the agent's name: `job_key` keeps the job under that agent's own prefix.
        metadata = JobMetadata(job_id=f"{runtime.agent}/{uuid.uuid4().hex}", bucket=runtime.payload_bucket)
        self._save(
            metadata,
            {
                "polls": int(settings.get("polls", 2)),
                "fail": bool(settings.get("fail", False)),
                "raise_on": settings.get("raise_on"),
                "inputs": wire.to_dict(task.literals),
                "gets": 0,
                "deletes": 0,
            },
        )
        return metadata

    def get(self, metadata: JobMetadata) -> Resource:
        job = self._load(metadata)
        if job["raise_on"] == "get":
            raise AgentError("the example platform lost track of the job (raise_on=get)")
        job["gets"] += 1
        self._save(metadata, job)
        links = [LogLink("Example job", f"https://example.invalid/jobs/{metadata.job_id}")]
        if job["gets"] < job["polls"]:
            return Resource(Phase.RUNNING, f"poll {job['gets']} of {job['polls']}", links)
        if job["fail"]:
            return Resource(Phase.FAILED, "the example job failed (fail=true)", links)
        return Resource(
            Phase.SUCCEEDED,
            "done",
            links,
            outputs={**_decoded(job["inputs"]), "polls": job["gets"]},
            custom_info={"job_id": metadata.job_id},
        )

    def delete(self, metadata: JobMetadata) -> None:
        job = self._load(metadata)
        if job["raise_on"] == "delete":
            raise AgentError("the example platform cannot cancel the job (raise_on=delete)")
        job["deletes"] += 1
        self._save(metadata, job)

    @staticmethod
    def job_key(job_id: str) -> str:
        agent, _, job = job_id.partition("/")
        return payload_key("state", agent, job)

    def _load(self, metadata: JobMetadata) -> dict[str, Any]:
        body = aws.client("s3").get_object(Bucket=metadata.bucket, Key=self.job_key(metadata.job_id))["Body"]
        return dict(json.loads(body.read()))

    def _save(self, metadata: JobMetadata, job: dict[str, Any]) -> None:
        aws.client("s3").put_object(
            Bucket=metadata.bucket, Key=self.job_key(metadata.job_id), Body=json.dumps(job).encode()
        )


def _decoded(literals: dict[str, Any]) -> dict[str, Any]:
    # Imported here, when the job ends: a get that finds the job running needs no protobuf.
    from flyteidl.core.literals_pb2 import LiteralMap

    from serverless_agents.flyte.literals import decode_literal_map

    literal_map = wire.from_dict(LiteralMap, literals, field="job.inputs")
    return decode_literal_map(literal_map, None, prefix="job.inputs")


class EchoAgent(SyncAgentBase):
    """Answers at once with its inputs as outputs. `async def`, as agents that call HTTP APIs often are."""

    task_type = "example_echo"

    async def do(self, task: TaskContext) -> Resource:
        return Resource(Phase.SUCCEEDED, "echoed", outputs=dict(task.inputs))
