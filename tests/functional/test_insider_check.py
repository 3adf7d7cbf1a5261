"""`serverless-agents check --api URL` (#21 item 4) against the local stack of the example manifest: the
stack has no CloudFormation stack, so the API is named by URL and the FileSensor's bucket by
`--sensor-bucket`; each canary's step is one line, the test object is removed, and the exit code says
whether every step passed. (`--stack` is tested against the rehearsal's deployed template:
tests/rehearsal/test_insider_check.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serverless_agents.cli import main
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST
from serverless_agents.local.stack import LocalStack

pytestmark = pytest.mark.functional

#: The bucket the example manifest's FileSensor watches (its S3 rule); the local stack creates it.
WATCHED = "my-landing-bucket"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(EXAMPLE_MANIFEST, driver_interval=0.1) as local:
        yield local


def test_check_passes_against_the_local_stack(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--api", stack.api_url, "--sensor-bucket", WATCHED, "--timeout", "60"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out[0] == f"checking {stack.api_url}: {stack.api_url}"
    assert out[1].startswith(f"ok   ListAgents at {stack.api_url}: job (example_job, async), echo (")
    steps = [line.split(":")[0] for line in out[2:-1]]
    assert steps == [
        "ok   async job job",
        "ok   sync echo echo",
        "ok   FileSensor files on s3",
        "ok   removed s3",
    ]
    assert out[-1] == "check passed: 5 steps, 0 failed"
    listed = stack.client("s3").list_objects_v2(Bucket=WATCHED, Prefix="serverless-agents-check/")
    assert listed.get("KeyCount", 0) == 0


def test_check_without_a_sensor_bucket_skips_the_sensor_step(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--api", stack.api_url, "--timeout", "60"]) == 0

    out = capsys.readouterr().out
    assert "skip FileSensor: no watched bucket known (--sensor-bucket)" in out
    assert "check passed: 4 steps, 0 failed" in out


def test_check_fails_and_says_so_when_the_api_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--api", "http://127.0.0.1:9", "--timeout", "5"]) == 2
    assert "the API at http://127.0.0.1:9 cannot be reached" in capsys.readouterr().err
