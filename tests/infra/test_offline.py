"""`cdk synth`'s own entry point (infra/cdk/app.py, as cdk.json runs it) works without AWS credentials,
Docker or network, in a clean process: the CLI's way in, with its default, the example manifest. cdk-nag runs
in that synth too, so the example manifest (every built-in agent and a FileSensor) passes it. No Node
on PATH either: jsii runs on the one the `cdk` extra installs, a supported one (no end-of-life banner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST
from serverless_agents.deployment.plan import plan_deployment

ROOT = Path(__file__).resolve().parents[2]


def test_app_synthesizes_offline_without_credentials_or_docker(tmp_path: Path) -> None:
    outdir = tmp_path / "cdk.out"
    without_node = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "node").exists()]
    environment = {
        "PATH": os.pathsep.join(without_node),
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
    for banner in ("end-of-life", "not been tested", "unsupported"):  # jsii's Node version warnings
        assert banner not in result.stderr, result.stderr[-4000:]
    template = json.loads((outdir / "serverless-agents.template.json").read_text())
    resources = template["Resources"].values()
    functions = {r["Properties"]["FunctionName"] for r in resources if r["Type"] == "AWS::Lambda::Function"}
    # Every agent of the manifest, sensors included, whatever it holds today.
    plan = plan_deployment(EXAMPLE_MANIFEST)
    assert plan.async_agents
    assert plan.sync_agents
    assert plan.sensor_agents
    assert plan.sweeper is not None  # there are async agents to sweep
    assert functions == {f.name for f in plan.functions}
    groups = {r["Properties"]["Name"] for r in resources if r["Type"] == "AWS::Scheduler::ScheduleGroup"}
    assert groups == set(plan.schedule_groups)
    rules = {r["Properties"].get("Name") for r in resources if r["Type"] == "AWS::Events::Rule"}
    assert {rule.name for a in plan.sensor_agents for rule in a.rules} <= rules
    assets = json.loads((outdir / "serverless-agents.assets.json").read_text())["files"]
    zipped = [a for a in assets.values() if a["source"]["packaging"] == "zip"]
    assert len(zipped) == 1  # the stand-in: project code and manifest, no pip-installed dependencies
    staged = outdir / zipped[0]["source"]["path"]
    assert (staged / "agents.toml").read_text() == EXAMPLE_MANIFEST.read_text()
    assert not (staged / "boto3").exists()
