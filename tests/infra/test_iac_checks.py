"""The IaC checks on the synthesized template, as CloudFormation receives it: cfn-lint reports no error
and only the warnings `nag.CFN_LINT_ACCEPTED` gives a reason for; checkov fails no check and every check it
skips says why (`nag.skip_check`). And what neither sees: no function's tracer puts task data in X-Ray.

The sensing template carries every kind of resource the app makes (async, sync and sensor agents, manifest
permissions), so one run of each tool covers them all. checkov pins dependencies the project cannot share
(boto3 1.35), so it runs from its own venv, `.venv-checkov`, which `make test` creates.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.shared import constants as powertools
from cfnlint.api import ManualArgs, lint
from infra.cdk.serverless_agents_cdk import nag

from tests.infra.conftest import REGION, Synth

ROOT = Path(__file__).resolve().parents[2]
#: The Makefile's `.venv-checkov` (SA_CHECKOV names another checkov).
CHECKOV = Path(os.environ.get("SA_CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")


@pytest.fixture(params=["base", "sensing"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each synthesized manifest: without sensors, and with a sensor and manifest permissions."""
    synth: Synth = request.getfixturevalue(request.param)
    return synth


def test_every_function_keeps_task_data_out_of_traces(synth: Synth) -> None:
    functions = synth.resources("AWS::Lambda::Function")

    assert functions
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        # The variables Powertools' Tracer reads: no handler response (a task's outputs), no exception.
        assert variables[powertools.TRACER_CAPTURE_RESPONSE_ENV] == "false", logical_id
        assert variables[powertools.TRACER_CAPTURE_ERROR_ENV] == "false", logical_id


def test_cfn_lint_finds_no_error_and_only_the_warnings_accepted(sensing: Synth) -> None:
    matches = lint(json.dumps(sensing.json), config=ManualArgs(regions=[REGION]))

    assert [str(m) for m in matches if m.rule.id not in nag.CFN_LINT_ACCEPTED] == []
    assert not [rule for rule in nag.CFN_LINT_ACCEPTED if rule.startswith("E")]  # errors are never accepted
    assert all(len(reason.split()) >= 10 for reason in nag.CFN_LINT_ACCEPTED.values())


def run_checkov(template: dict[str, Any], directory: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"checkov is not installed at {CHECKOV}: `make test` installs it there")
        pytest.skip(f"checkov is not installed at {CHECKOV}: `make test` installs it there")
    path = directory / "template.json"
    path.write_text(json.dumps(template))
    result = subprocess.run(
        # --skip-download: no guideline or policy download from the vendor's platform, nothing leaves
        # this machine.
        [
            str(CHECKOV),
            "--file",
            str(path),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "BC_SKIP_MAPPING": "TRUE"},
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: some check failed
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_checkov_fails_no_check_and_every_skip_says_why(sensing: Synth, tmp_path: Path) -> None:
    report = run_checkov(sensing.json, tmp_path)
    results = report["results"]

    assert [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]] == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100
    for check in results["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 10, (check["check_id"], check["resource"], reason)
