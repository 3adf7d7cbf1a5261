"""The in-process Lambda hook into moto: if moto changes under it, these fail loudly."""

from __future__ import annotations

import io
import json
import zipfile
from importlib.metadata import version

import pytest

from serverless_agents.local.lambda_dispatch import PINNED_MOTO
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional


def test_moto_is_the_version_the_hook_was_written_for() -> None:
    assert version("moto") == PINNED_MOTO


def test_invoke_runs_the_real_handler(harness: Harness) -> None:
    response = harness.stack.client("lambda").invoke(
        FunctionName=f"{harness.stack.deployment}-finalize",
        Payload=json.dumps({"detail": {"status": "SUCCEEDED", "name": "x"}}).encode(),
    )

    # moto's own Docker-free backend would echo the payload back; the real handler answers this:
    assert json.loads(response["Payload"].read()) == {"ignored": "status 'SUCCEEDED'"}
    assert "FunctionError" not in response


def test_unhandled_exception_is_reported_like_the_lambda_runtime(harness: Harness) -> None:
    response = harness.stack.client("lambda").invoke(
        FunctionName=f"{harness.stack.deployment}-job-get", Payload=json.dumps({"task_id": "t"}).encode()
    )

    error = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "KeyError"
    assert "stackTrace" in error


def test_function_environment_is_bound_per_invocation(harness: Harness) -> None:
    # The echo function sees SA_AGENT=echo although the process environment has no SA_AGENT at all.
    request = harness.request("example_echo", inputs={"a": 1}, outputs={"a": int})
    assert harness.api.execute_sync("echo", request).resource.message == "echoed"


def test_a_handler_string_of_no_project_function_is_refused(harness: Harness) -> None:
    lambdas = harness.stack.client("lambda")
    ours = lambdas.get_function(FunctionName=f"{harness.stack.deployment}-finalize")["Configuration"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 'ran'\n")
    lambdas.create_function(
        FunctionName="not-ours",
        Runtime="python3.12",
        Role=ours["Role"],
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
    )
    try:
        response = lambdas.invoke(FunctionName="not-ours", Payload=b"{}")
    finally:
        lambdas.delete_function(FunctionName="not-ours")

    error = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == (
        "UnknownHandler",
        "handler 'app.handler' is not one of this project's: expected functions.<role>.handler.handler",
    )
