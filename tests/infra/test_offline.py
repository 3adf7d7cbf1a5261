"""`cdk synth`'s own entry point (infra/cdk/app.py, as cdk.json runs it) works without AWS credentials,
Docker or network, in a clean process: the CLI's way in, with the repository's agents.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_app_synthesizes_offline_without_credentials_or_docker(tmp_path: Path) -> None:
    outdir = tmp_path / "cdk.out"
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),  # jsii's package cache; no AWS files are read
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "CDK_DOCKER": str(tmp_path / "no-docker"),
        # Any HTTP(S) attempt goes to a closed port.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        # What the CDK CLI hands the app: `cdk synth -c bundling=skip` from infra/cdk.
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({"bundling": "skip"}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT / "infra" / "cdk",
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((outdir / "serverless-agents.template.json").read_text())
    functions = {
        r["Properties"]["FunctionName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert functions == {
        "serverless-agents-api",
        "serverless-agents-finalize",
        "serverless-agents-job-create",
        "serverless-agents-job-get",
        "serverless-agents-job-delete",
        "serverless-agents-echo-sync",
    }
    assets = json.loads((outdir / "serverless-agents.assets.json").read_text())["files"]
    zipped = [a for a in assets.values() if a["source"]["packaging"] == "zip"]
    assert len(zipped) == 1  # the stand-in: project code and manifest, no pip-installed dependencies
    staged = outdir / zipped[0]["source"]["path"]
    assert (staged / "agents.toml").read_text() == (ROOT / "agents.toml").read_text()
    assert not (staged / "boto3").exists()
