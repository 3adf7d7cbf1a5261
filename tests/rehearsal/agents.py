"""An agent whose code turns on its neighbours: what a hostile dependency inside one agent would try.

`IntruderAgent.create` takes its targets from the template's `custom` (another agent's task, secret, sensor
schedule and log group) and tries, from inside its own deployed create function, to read and forge that
task's table item, read and overwrite that agent's payloads, read its secret, delete its sensor's
schedule and write into its log group; and, as controls, to read its own task, its own secret and write
its own log group. Each attempt's outcome ("done", or the error code AWS answered) comes back in the
task's custom info. The rehearsal's IAM audit records every call with the function that made it and
refuses those the deployed policy denies (`CallRecorder.enforce`), as AWS would.

`RedeployJobV1` and `RedeployJobV2` are one agent's code before and after a deploy (#21 item 3).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from serverless_agents import aws
from serverless_agents.agent import AsyncAgentBase, Phase, Resource, ResourceMetadata, TaskContext
from serverless_agents.aws.payloads import payload_key
from serverless_agents.deployment.naming import agent_log_group
from serverless_agents.examples import JobAgent, JobMetadata
from serverless_agents.runtime.settings import current_settings

#: What the intruder writes into a victim's task: a success of its choosing.
FORGED_OUTPUTS = {"literals": {"n": {"scalar": {"primitive": {"integer": "666"}}}}}


class IntrusionMetadata(ResourceMetadata):
    #: Each attempt's name -> "done" or the error code it met.
    outcomes: dict[str, str]


class IntruderAgent(AsyncAgentBase[IntrusionMetadata]):
    task_type = "rehearsal_intruder"
    metadata_type = IntrusionMetadata

    def create(self, task: TaskContext) -> IntrusionMetadata:
        target = dict(task.custom)
        runtime = current_settings()
        victim, victim_task = str(target["victim_agent"]), str(target["victim_task"])
        table, bucket = runtime.tasks_table, runtime.payload_bucket
        dynamodb, s3, logs = aws.client("dynamodb"), aws.client("s3"), aws.client("logs")
        secrets, scheduler = aws.client("secretsmanager"), aws.client("scheduler")
        stream = f"intruder-{task.task_id}"

        def forge() -> Any:
            return dynamodb.update_item(
                TableName=table,
                Key={"id": {"S": victim_task}},
                UpdateExpression="SET #phase = :phase, #outputs = :outputs",
                ExpressionAttributeNames={"#phase": "phase", "#outputs": "outputs"},
                ExpressionAttributeValues={
                    ":phase": {"S": Phase.SUCCEEDED.name},
                    ":outputs": {"S": json.dumps(FORGED_OUTPUTS)},
                },
            )

        def write_log(group: str) -> Any:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            event = {"timestamp": int(time.time() * 1000), "message": "intruder was here"}
            return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[event])

        attempts: dict[str, Callable[[], Any]] = {
            "read victim task": lambda: dynamodb.get_item(TableName=table, Key={"id": {"S": victim_task}}),
            "forge victim task": forge,
            "read victim request": lambda: s3.get_object(
                Bucket=bucket, Key=payload_key("requests", victim, victim_task)
            ),
            "write victim outputs": lambda: s3.put_object(
                Bucket=bucket, Key=payload_key("outputs", victim, victim_task), Body=b"{}"
            ),
            "write victim state": lambda: s3.put_object(
                Bucket=bucket, Key=payload_key("state", victim, "intruder"), Body=b"{}"
            ),
            "read victim secret": lambda: secrets.get_secret_value(SecretId=target["victim_secret"]),
            "delete victim schedule": lambda: scheduler.delete_schedule(
                GroupName=target["victim_schedule_group"], Name=target["victim_schedule"]
            ),
            "write victim logs": lambda: write_log(agent_log_group(runtime.deployment, victim)),
            # Controls: what is its own it reaches.
            "read own task": lambda: dynamodb.get_item(TableName=table, Key={"id": {"S": task.task_id}}),
            "read own secret": lambda: secrets.get_secret_value(SecretId=target["own_secret"]),
            "write own logs": lambda: write_log(agent_log_group(runtime.deployment, str(runtime.agent))),
        }
        return IntrusionMetadata(outcomes={name: _outcome(attempt) for name, attempt in attempts.items()})

    def get(self, metadata: IntrusionMetadata) -> Resource:
        return Resource(Phase.SUCCEEDED, "tried", custom_info=dict(metadata.outcomes))

    def delete(self, metadata: IntrusionMetadata) -> None:
        pass  # nothing runs anywhere


def _outcome(attempt: Callable[[], Any]) -> str:
    try:
        attempt()
    except Exception as e:  # any refusal is an outcome to report, not a failure of the intruder
        return aws.error_code(e) or type(e).__name__
    return "done"


class RedeployMetadata(JobMetadata):
    """Version N+1's metadata: version N's (`JobMetadata`) and a new field, with a default, as
    `serverless_agents.deployment.evolution` requires: a record version N wrote reads as code_version 1."""

    code_version: int = 1


class RedeployJobV1(JobAgent):
    """Version N of an agent redeployed mid-task (tests/rehearsal/test_rehearsal_redeploy.py): the example
    job, counting its gets by the code that made them in the job's own record (`gets_by_code`)."""

    task_type = "rehearsal_redeploy"
    code = "v1"

    def get(self, metadata: JobMetadata) -> Resource:
        resource = super().get(metadata)
        job = self._load(metadata)
        job.setdefault("gets_by_code", {}).setdefault(self.code, 0)
        job["gets_by_code"][self.code] += 1
        self._save(metadata, job)
        if resource.phase is Phase.SUCCEEDED:
            resource.custom_info.update(self.reported(metadata))
        return resource

    def reported(self, metadata: JobMetadata) -> dict[str, Any]:
        return {"code": self.code}


class RedeployJobV2(RedeployJobV1):
    """Version N+1: new code, and metadata with a new field (`RedeployMetadata.code_version`)."""

    metadata_type = RedeployMetadata  # type: ignore[assignment]
    code = "v2"

    def create(self, task: TaskContext) -> RedeployMetadata:
        return RedeployMetadata(**super().create(task).model_dump(), code_version=2)

    def reported(self, metadata: JobMetadata) -> dict[str, Any]:
        assert isinstance(metadata, RedeployMetadata), type(metadata)  # read with version N+1's type
        return {"code": self.code, "metadata_code_version": metadata.code_version}
