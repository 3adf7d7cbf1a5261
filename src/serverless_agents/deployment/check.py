"""`serverless-agents check`: verify a real deployment, run by an operator after `cdk deploy`.

It resolves the deployment from the named CloudFormation stack (DescribeStacks: its `ApiUrl` output; its
description, which the CDK app sets, must say it is a serverless-agents deployment, else the check refuses
to run), or takes an API URL (`--api`, for the local stack). Then, through the deployed API, signed with
SigV4 by `client.ApiClient` with the operator's own credentials, one step a line:

1. ListAgents: the deployed agents;
2. a canary task of each built-in kind that needs no outside service: the example job (`example_job`,
   async: create, GetTask until it ends, its outputs checked), the echo (`example_echo`, sync), and a
   FileSensor on a test object the check uploads to the bucket the sensor's S3 rule watches (the stack's
   deployed rule, or `--sensor-bucket`) and removes after: uploaded first, so the sensor's first poke at
   creation finds it (the S3 -> EventBridge delivery, which the bucket's owner turns on, is not checked).

Every task it started and did not see end is deleted (DeleteTask) before it returns, whatever failed.
An agent kind the deployment does not have is reported as skipped, not failed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serverless_agents.agent import Phase
from serverless_agents.aws.s3uri import event_buckets
from serverless_agents.deployment.naming import STACK_DESCRIPTION
from serverless_agents.exceptions import NotOurDeployment, ServerlessAgentsError
from serverless_agents.flyte.literals import decode_literal_map
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.testing import task_request

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client

    from serverless_agents.api.client import ApiClient

#: Where the FileSensor canary's test object goes in the watched bucket.
CANARY_PREFIX = "serverless-agents-check/"
#: The example agents' task types, and FileSensor's route (flytekit's module and class).
JOB, ECHO, SENSOR = "example_job", "example_echo", "sensor"
FILE_SENSOR = {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor"}
_USABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")


@dataclass(frozen=True)
class Deployment:
    """What the check runs against: the API, and a bucket a FileSensor watches (None: no sensor step)."""

    api_url: str
    sensor_bucket: str | None = None


def from_stack(stack: str, cloudformation: Any, events: EventBridgeClient) -> Deployment:
    """The deployment the stack named `stack` holds; `NotOurDeployment` for a stack the CDK app did not
    make (or one not deployed, or mid-deploy). `cloudformation`: a boto3 CloudFormation client (the dev
    dependencies carry no stubs for it)."""
    from botocore.exceptions import ClientError

    try:
        (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as e:
        raise NotOurDeployment(f"stack {stack!r}: {e.response['Error'].get('Message', e)}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    if not described.get("Description", "").startswith(STACK_DESCRIPTION) or "ApiUrl" not in outputs:
        raise NotOurDeployment(
            f"stack {stack!r} is not a serverless-agents deployment (its description does not start with "
            f"{STACK_DESCRIPTION!r}, or it has no ApiUrl output): refusing to run against it"
        )
    if described["StackStatus"] not in _USABLE:
        raise NotOurDeployment(f"stack {stack!r} is {described['StackStatus']}: check it once deployed")
    patterns = []
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
    for page in pages:
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Events::Rule" and resource.get("PhysicalResourceId"):
                rule = events.describe_rule(Name=resource["PhysicalResourceId"].split("|")[-1])
                if "EventPattern" in rule:
                    patterns.append(json.loads(rule["EventPattern"]))
    buckets = event_buckets(patterns)
    return Deployment(outputs["ApiUrl"], buckets[0] if buckets else None)


@dataclass
class Report:
    """One line per step, printed as it ends; whether any failed."""

    say: Callable[[str], None]
    failed: int = 0
    lines: list[str] = field(default_factory=list)

    def step(self, ok: bool | None, text: str) -> None:
        """ok: True passed, False failed, None skipped."""
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[ok]
        self.failed += ok is False
        line = f"{mark} {text}"
        self.lines.append(line)
        self.say(line)


@dataclass
class Check:
    api: ApiClient
    s3: S3Client | None
    deployment: Deployment
    report: Report
    #: Seconds each task has to end.
    timeout: float = 120.0
    #: The example job's gets before it succeeds.
    job_polls: int = 2
    run: str = field(default_factory=lambda: f"check-{int(time.time())}-{uuid.uuid4().hex[:6]}")
    _open: dict[str, str] = field(default_factory=dict)  # task id -> what it is, until seen ended

    def __call__(self) -> int:
        """Every step; the number that failed."""
        with self._cleanup():
            types = self._agents()
            self._guarded("async job", lambda: self._job(types))
            self._guarded("sync echo", lambda: self._echo(types))
            self._guarded("FileSensor", lambda: self._sensor(types))
        return self.report.failed

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        try:
            step()
        except (ServerlessAgentsError, OSError, TimeoutError) as e:
            self.report.step(False, f"{what}: {e}")

    def _agents(self) -> dict[str, str]:
        """Task type -> agent name, from ListAgents."""
        agents = self.api.list_agents().agents
        listing = ", ".join(
            f"{a.name} ({a.supported_task_types[0]}, {'sync' if a.is_sync else 'async'})" for a in agents
        )
        self.report.step(True, f"ListAgents at {self.deployment.api_url}: {listing or 'none'}")
        return {a.supported_task_types[0]: a.name for a in agents if a.supported_task_types}

    def _job(self, types: dict[str, str]) -> None:
        if JOB not in types:
            self.report.step(None, f"async job: no agent serves {JOB!r}")
            return
        inputs = {"greeting": "canary", "n": 2}
        custom = {"polls": self.job_polls}
        outputs = {"greeting": str, "n": int, "polls": int}
        request = task_request(JOB, inputs, outputs, custom, execution=self.run)
        task_id, resource, seconds = self._run_task(request, f"{types[JOB]} ({JOB})")
        outputs = decode_literal_map(resource.outputs, request.template.interface.outputs.variables)
        ok = Phase(resource.phase) is Phase.SUCCEEDED and outputs == {**inputs, "polls": self.job_polls}
        self.report.step(
            ok,
            f"async job {types[JOB]}: task {task_id} {Phase(resource.phase).name} in {seconds:.1f} s: "
            f"{resource.message}; outputs {json.dumps(outputs, sort_keys=True)}",
        )

    def _echo(self, types: dict[str, str]) -> None:
        if ECHO not in types:
            self.report.step(None, f"sync echo: no agent serves {ECHO!r}")
            return
        request = task_request(ECHO, {"text": self.run}, {"text": str}, execution=self.run)
        resource = self.api.execute_sync(types[ECHO], request).resource
        echoed = decode_literal_map(resource.outputs, request.template.interface.outputs.variables)
        ok = Phase(resource.phase) is Phase.SUCCEEDED and echoed == {"text": self.run}
        self.report.step(ok, f"sync echo {types[ECHO]}: {Phase(resource.phase).name}: {json.dumps(echoed)}")

    def _sensor(self, types: dict[str, str]) -> None:
        bucket = self.deployment.sensor_bucket
        if SENSOR not in types or bucket is None or self.s3 is None:
            why = "no sensor agent" if SENSOR not in types else "no watched bucket known (--sensor-bucket)"
            self.report.step(None, f"FileSensor: {why}")
            return
        key = f"{CANARY_PREFIX}{self.run}.txt"
        path = f"s3://{bucket}/{key}"
        self.s3.put_object(Bucket=bucket, Key=key, Body=b"serverless-agents check\n")
        try:
            request = task_request(SENSOR, {"path": path}, {}, FILE_SENSOR, execution=self.run, node="n2")
            task_id, resource, seconds = self._run_task(request, f"FileSensor on {path}")
            self.report.step(
                Phase(resource.phase) is Phase.SUCCEEDED,
                f"FileSensor {types[SENSOR]} on {path}: task {task_id} {Phase(resource.phase).name} in "
                f"{seconds:.1f} s: {resource.message}",
            )
        finally:
            self.s3.delete_object(Bucket=bucket, Key=key)
            self.report.step(True, f"removed {path}")

    def _run_task(self, request: Any, what: str) -> tuple[str, Any, float]:
        """Create the task and GetTask until it ends (as propeller polls); (task id, resource, seconds)."""
        started = time.monotonic()
        task_id = task_id_from_resource_meta(self.api.create_task(request).resource_meta)
        self._open[task_id] = what
        deadline = started + self.timeout
        while True:
            resource = self.api.get_task(task_id).resource
            if Phase(resource.phase).is_terminal:
                del self._open[task_id]
                return task_id, resource, time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"task {task_id} ({what}) still {Phase(resource.phase).name} after {self.timeout:g} s"
                )
            time.sleep(0.5)

    @contextmanager
    def _cleanup(self) -> Iterator[None]:
        try:
            yield
        finally:
            for task_id, what in list(self._open.items()):
                try:
                    self.api.delete_task(task_id)
                    self.report.step(True, f"cancelled task {task_id} ({what})")
                except ServerlessAgentsError as e:
                    self.report.step(False, f"could not cancel task {task_id} ({what}): {e}")
