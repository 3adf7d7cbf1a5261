"""Run as a script by test_insider_masking: a Lambda handler that reads a secret, then writes it to its
descriptors every way Python and a subprocess can. Usage: python -m tests.unit.insider_prints MANIFEST SECRET
(run with AWS_LAMBDA_RUNTIME_API set, as Lambda runs a handler)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from serverless_agents import get_agent_secret
from serverless_agents.handlers.observability import redacted_output
from tests.agent_function import agent_function

_CHILD = "import sys; print('child stderr', sys.argv[1], file=sys.stderr)"


@redacted_output
def handler(event: dict[str, Any], context: Any) -> None:
    secret = get_agent_secret("token")
    os.write(1, f"os.write {secret}\n".encode())
    sys.__stdout__.write(f"__stdout__ {secret}\n")  # type: ignore[union-attr]
    sys.__stdout__.flush()  # type: ignore[union-attr]
    sys.stdout.buffer.write(f"buffer {secret}\n".encode())
    sys.stdout.flush()
    subprocess.run(["echo", "subprocess", secret], check=True)
    subprocess.run([sys.executable, "-c", _CHILD, secret], check=True)
    os.write(1, f"split {secret[:9]}".encode())  # one secret, two writes
    os.write(1, f"{secret[9:]} across two writes\n".encode())
    encoded = f"bytes {secret} split inside a character\n".encode()
    middle = encoded.index("é".encode()) + 1
    os.write(1, encoded[:middle])
    os.write(1, encoded[middle:])
    os.write(2, f"cut {secret[:-1]}".encode())  # the invocation ends on all of it but its last character


def main(manifest: Path, secret: str) -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="t", SecretString=secret)["ARN"]
        agent = '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'
        manifest.write_text(f'{agent}secrets = {{ token = "{arn}" }}\n')
        variables = {"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_MANIFEST": str(manifest)}
        with agent_function({**variables, "SA_AGENT": "echo"}):
            handler({}, None)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
