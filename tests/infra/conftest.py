"""Infra fixtures: the CDK app synthesized offline, once per session (jsii is slow), read as a template.

Synth uses `bundling=skip` (a stand-in asset folder with the project code only: no pip, no network), with
AWS variables removed, Docker pointed at nothing and Python sockets refused while it runs. The jsii kernel
(Node) may have started earlier with the suite's fake credentials; test_offline.py runs the real entry
point in a clean subprocess to prove synth needs none of them.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from infra.cdk.serverless_agents_cdk.toolchain import packaged_node

# jsii starts Node on the first `aws_cdk` import: the packaged one, not whatever is on PATH.
os.environ.setdefault("JSII_NODE", packaged_node())

from aws_cdk import App
from aws_cdk.assertions import Template
from infra.cdk.serverless_agents_cdk.app import build_app
from infra.cdk.serverless_agents_cdk.stack import ServerlessAgentsStack

ACCOUNT, REGION = "123456789012", "us-east-1"  # the recorded status-change event's account and region

#: Two async agents and one sync agent; secrets as full ARNs, partial ARNs and names.
BASE_MANIFEST = """
[deployment]
name = "serverless-agents"

[agents.job]
class = "serverless_agents.examples:JobAgent"
memory = 512
timeout = 45
execution_timeout = 3600
secrets = { token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:job-token" }

[agents.batch]
class = "tests.infra.agents:BatchAgent"
execution_timeout = 600
secrets = { password = "batch/password" }

[agents.echo]
class = "serverless_agents.examples:EchoAgent"
timeout = 10
secrets = { key = "arn:aws:secretsmanager:us-east-1:123456789012:secret:echo-key-AbC123" }
"""
#: The base manifest and one more async agent.
GROWN_MANIFEST = (
    BASE_MANIFEST
    + """
[agents.etl-nightly]
class = "tests.infra.agents:EtlAgent"
memory = 1024
"""
)

#: The bucket of the recorded S3 event (tests/events/s3_object_created.json, AWS's documented example).
WATCHED_BUCKET = "amzn-s3-demo-bucket1"
#: The base manifest, a FileSensor woken by S3 "Object Created" events of one bucket, and permissions of
#: the manifest for the sensor (the watched objects) and for one async agent (a queue it writes to).
SENSOR_MANIFEST = (
    BASE_MANIFEST
    + f"""
[agents.files]
class = "serverless_agents.agents.file_sensor:FileSensor"
memory = 384
timeout = 20
schedule = "rate(5 minutes)"

[[agents.files.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = {{ bucket = {{ name = ["{WATCHED_BUCKET}"] }} }}

[[agents.files.permissions]]
actions = ["s3:GetObject"]
resources = ["arn:aws:s3:::{WATCHED_BUCKET}/*"]

[[agents.files.permissions]]
actions = ["s3:ListBucket"]
resources = ["arn:aws:s3:::{WATCHED_BUCKET}"]

[[agents.job.permissions]]
actions = ["sqs:SendMessage"]
resources = ["arn:aws:sqs:us-east-1:123456789012:job-events"]
"""
)


@dataclass
class Synth:
    app: App
    stack: ServerlessAgentsStack
    template: Template
    json: dict[str, Any]
    outdir: Path

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == kind}

    def properties(self, kind: str) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in self.resources(kind).values()]

    def logical_id(self, kind: str, **properties: Any) -> str:
        """The one resource of `kind` whose properties include `properties`."""
        found = [
            k
            for k, r in self.resources(kind).items()
            if all(r.get("Properties", {}).get(p) == v for p, v in properties.items())
        ]
        assert len(found) == 1, f"{kind} with {properties}: {found}"
        return found[0]

    def function_id(self, name: str) -> str:
        return self.logical_id("AWS::Lambda::Function", FunctionName=name)


@contextmanager
def offline() -> Iterator[None]:
    """No AWS configuration, no Docker, no Python sockets, while the block runs."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "CDK_DEFAULT_"))}
    for name in saved:
        del os.environ[name]
    docker = os.environ.get("CDK_DOCKER")
    os.environ["CDK_DOCKER"] = "/nonexistent/docker"  # any Docker bundling would fail loudly
    real_connect = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"synth tried to open a connection to {address!r}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        os.environ.update(saved)
        if docker is None:
            os.environ.pop("CDK_DOCKER", None)
        else:
            os.environ["CDK_DOCKER"] = docker


def synthesize(manifest_text: str, directory: Path) -> Synth:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "agents.toml"
    manifest.write_text(manifest_text)
    outdir = directory / "cdk.out"
    with offline():
        app, stack = build_app({"manifest": str(manifest), "bundling": "skip"}, outdir=str(outdir))
        assembly = app.synth()  # cdk-nag runs here: an unacknowledged finding raises
    template = assembly.get_stack_artifact(stack.artifact_id).template
    return Synth(app, stack, Template.from_json(template), template, outdir)


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(BASE_MANIFEST, tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def sensing(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(SENSOR_MANIFEST, tmp_path_factory.mktemp("sensing"))


@pytest.fixture(scope="session")
def events_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "events"


def load_event(events_dir: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((events_dir / name).read_text()))


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for the subset the rules use: nested fields, each a list of exact values."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not (isinstance(actual, dict) and matches(expected, actual)):
                return False
            continue
        if any(not isinstance(value, str | int | float | bool) for value in expected):
            raise NotImplementedError(f"content filter in {key}: {expected}")  # prefix, anything-but, ...
        values = actual if isinstance(actual, list) else [actual]
        if not any(value in expected for value in values):
            return False
    return True


# What every function's SA_FUNCTION_ARN_PREFIX synthesizes to.
FUNCTION_ARN_PREFIX = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":lambda:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":function:",
        ],
    ]
}
