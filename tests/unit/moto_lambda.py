"""Lambda functions on moto whose code is a function in the tests, run in this process by the local stack's
Lambda hook (`local.lambda_dispatch`): the code under test invokes them through a real boto3 Lambda client,
so botocore validates the request and the answer comes back as Lambda sends it (`Payload`, and
`FunctionError: Unhandled` when the function raises)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from serverless_agents.local.lambda_dispatch import InProcessLambdas

REGION = "us-east-1"


@contextmanager
def moto_with_lambdas() -> Iterator[None]:
    """moto for every service, Lambda's invocations run in this process: a handler string names a function
    of the tests (`module.function`), not one of the project's entry points."""
    lambdas = InProcessLambdas(resolve=_module_and_function)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        lambdas.install()
        try:
            yield
        finally:
            lambdas.uninstall()


def _module_and_function(handler: str) -> tuple[str, str]:
    module, _, function = handler.rpartition(".")
    return module, function


def deploy_function(lambda_client: Any, name: str, handler: str) -> None:
    """Create `name` running `handler` (`module.function`, imported when invoked, as Lambda does)."""
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("placeholder.py", "")  # the code that runs is `handler`, in this process
    lambda_client.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler=handler, Code={"ZipFile": code.getvalue()}
    )
