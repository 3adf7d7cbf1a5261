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
    Stack,
    create_stack,
    publish_assets,
)
from tests.rehearsal.iam_audit import CallRecorder

#: The example job under five task types, one per test, so each test finds its job's record by agent
#: (name -> class, seconds between polls): `slowjob` is still running when it is aborted.
AGENTS = {
    "job": ("serverless_agents.examples:JobAgent", 0),
    "etl": ("tests.infra.agents:EtlAgent", 0),
    "batch": ("tests.infra.agents:BatchAgent", 0),
    "slowjob": ("tests.functional.agents:SlowJobAgent", 1),
    "audited": ("tests.functional.agents:ShortTimeoutJobAgent", 0),
}
MANIFEST = '[deployment]\nname = "rehearsal"\n' + "".join(
    f'\n[agents.{name}]\nclass = "{agent}"\npoll = {{ initial = {wait}, factor = 1.0, cap = {wait} }}\n'
    for name, (agent, wait) in AGENTS.items()
)
MANIFEST += '\n[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'  # a sync agent: its own route


@dataclass
class Deployed:
    synth: Synth
    stack: Stack
    api: ApiGateway
    events: EventBridge
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
            lambda_client = boto3.client("lambda", region_name=REGION)
            with calls.recording(lambdas):
                yield Deployed(
                    synth=rehearsal_synth,
                    stack=stack,
                    api=ApiGateway(
                        boto3.client("apigateway", region_name=REGION), lambda_client, stack.outputs["ApiUrl"]
                    ),
                    events=EventBridge(boto3.client("events", region_name=REGION), lambda_client),
                    lambdas=lambdas,
                    calls=calls,
                    task_root=task_root,
                )
        finally:
            lambdas.uninstall()


def load_event(name: str) -> dict[str, Any]:
    return dict(json.loads((Path(__file__).resolve().parents[1] / "events" / name).read_text()))
