"""The rehearsal's deployment: the CDK app synthesized offline once (bundling skipped, as tests/infra does),
its assets published and its template deployed into moto's CloudFormation, once for the package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_agents.local import moto_fixes
from serverless_agents.local.lambda_dispatch import InProcessLambdas
from tests.infra.conftest import Synth, synthesize
from tests.rehearsal import cfn_shims
from tests.rehearsal.deployment import (
    ACCOUNT,
    REGION,
    ApiGateway,
    EventBridge,
    Scheduler,
    Stack,
    create_stack,
    publish_assets,
)
from tests.rehearsal.iam_audit import CallRecorder

#: The example job under five task types, and an intruder (name -> class, seconds between polls). The
#: agents whose tasks are aborted wait a second between polls, so that the stop lands in a Wait
#: (`lifecycle.abort_running`).
AGENTS = {
    "job": ("serverless_agents.examples:JobAgent", 0),
    "etl": ("tests.infra.agents:EtlAgent", 0),
    "batch": ("tests.infra.agents:BatchAgent", 0),
    "slowjob": ("tests.functional.agents:SlowJobAgent", 1),
    "audited": ("tests.functional.agents:ShortTimeoutJobAgent", 1),
    # Turns on its neighbours (tests/rehearsal/test_insider_tenancy.py): each agent is a tenant.
    "intruder": ("tests.rehearsal.agents:IntruderAgent", 0),
    "chain": ("tests.functional.agents:ChainJobAgent", 1),
    # Its platform's events end its tasks' waits (#21 item 2): a minute between polls, so only an event
    # ends one within the tests' bounds.
    "signalled": ("tests.functional.agents:GatedJobAgent", 60),
}
#: Agents that declare their jobs' events in the manifest (TOML lines).
EVENTS = {
    "signalled": 'event_job_id = "detail.job"\n'
    'events = [{ source = ["rehearsal.jobs"], detail-type = ["Job State Change"] }]\n',
}
#: Agents whose executions continue as new ones after this many polls (#21 item 1: a chain of executions).
POLLS_PER_EXECUTION = {"chain": 3}
#: Agents with a secret each (its name in Secrets Manager): the intruder's own, and a neighbour's it tries.
SECRETS = {"intruder": "rehearsal-intruder-token", "etl": "rehearsal-etl-token"}
#: A task of these whose delete keeps failing is ended by the sweeper one second after its cleanup began.
END_WITHIN_ONE_SECOND = ("audited", "slowjob")
#: The sensor, a FileSensor woken by S3 "Object Created" events of this bucket (AWS's recorded example's,
#: tests/events/s3_object_created.json): a user's bucket, not the stack's, so the tests create it.
SENSOR, WATCHED_BUCKET = "files", "amzn-s3-demo-bucket1"
MANIFEST = '[deployment]\nname = "rehearsal"\n' + "".join(
    f'\n[agents.{name}]\nclass = "{agent}"\npoll = {{ initial = {wait}, factor = 1.0, cap = {wait} }}\n'
    + ("end_within = 1\n" if name in END_WITHIN_ONE_SECOND else "")
    + (f'secrets = {{ token = "{SECRETS[name]}" }}\n' if name in SECRETS else "")
    + (f"polls_per_execution = {POLLS_PER_EXECUTION[name]}\n" if name in POLLS_PER_EXECUTION else "")
    + EVENTS.get(name, "")
    for name, (agent, wait) in AGENTS.items()
)
MANIFEST += '\n[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'  # a sync agent: its own route
# As the repository's agents.toml deploys flytekit's FileSensor: its pattern, and what HeadObject needs.
MANIFEST += f"""
[agents.{SENSOR}]
class = "serverless_agents.agents.file_sensor:FileSensor"
schedule = "rate(1 minute)"
end_within = 1  # a task whose pokes stopped is the sweeper's a second after its deadline

[[agents.{SENSOR}.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = {{ bucket = {{ name = ["{WATCHED_BUCKET}"] }} }}

[[agents.{SENSOR}.permissions]]
actions = ["s3:GetObject"]
resources = ["arn:aws:s3:::{WATCHED_BUCKET}/*"]

[[agents.{SENSOR}.permissions]]
actions = ["s3:ListBucket"]
resources = ["arn:aws:s3:::{WATCHED_BUCKET}"]
"""


@dataclass
class Deployed:
    synth: Synth
    stack: Stack
    api: ApiGateway
    events: EventBridge
    scheduler: Scheduler
    lambdas: InProcessLambdas
    #: Every AWS call the deployed functions made, with the function that made it.
    calls: CallRecorder
    #: Where the functions' code asset unpacks (the Lambda runtime's LAMBDA_TASK_ROOT).
    task_root: Path

    def client(self, service: str) -> Any:
        make: Any = boto3.client  # any service's client, untyped (boto3-stubs types each by name)
        return make(service, region_name=REGION)

    def function(self, name: str) -> dict[str, Any]:
        return dict(self.client("lambda").get_function_configuration(FunctionName=name))


@pytest.fixture(scope="session")
def rehearsal_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(MANIFEST, tmp_path_factory.mktemp("rehearsal"))


@pytest.fixture(scope="package")
def deployed(rehearsal_synth: Synth) -> Iterator[Deployed]:
    from moto import mock_aws

    lambdas = InProcessLambdas()
    calls = CallRecorder(ACCOUNT, REGION)
    mock = mock_aws(
        config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
    )
    with mock, cfn_shims.installed(), pytest.MonkeyPatch.context() as patch:
        lambdas.install()
        moto_fixes.install()
        try:
            published = publish_assets(rehearsal_synth.outdir, boto3.client("s3", region_name=REGION))
            (task_root,) = set(published.values())  # one code asset serves every function
            # The Lambda runtime's variable: handlers find the bundled agents.toml there.
            patch.setenv("LAMBDA_TASK_ROOT", str(task_root))
            stack = create_stack(boto3.client("cloudformation", region_name=REGION), rehearsal_synth.json)
            # The bucket the sensor watches is the user's, not the stack's (its events reach EventBridge
            # once the user turns that on: docs/agents/file-sensor.md).
            boto3.client("s3", region_name=REGION).create_bucket(Bucket=WATCHED_BUCKET)
            lambda_client = boto3.client("lambda", region_name=REGION)
            with calls.recording(lambdas):
                yield Deployed(
                    synth=rehearsal_synth,
                    stack=stack,
                    api=ApiGateway(
                        boto3.client("apigateway", region_name=REGION), lambda_client, stack.outputs["ApiUrl"]
                    ),
                    events=EventBridge(boto3.client("events", region_name=REGION), lambda_client),
                    scheduler=Scheduler(boto3.client("scheduler", region_name=REGION), lambda_client),
                    lambdas=lambdas,
                    calls=calls,
                    task_root=task_root,
                )
        finally:
            lambdas.uninstall()


def load_event(name: str) -> dict[str, Any]:
    return dict(json.loads((Path(__file__).resolve().parents[1] / "events" / name).read_text()))
