"""Agent code kept outside the repository: the manifest's `deployment.code_path`, relative to the manifest,
is what the CDK app and the bundler import agent classes from and copy into the Lambda bundles (`up`
honours it too: tests/functional/test_local_sensor_dev.py). A bad manifest stops `cdk synth`'s entry point
with one line, as it stops `up`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.cdk.serverless_agents_cdk.bundles import agent_code, assemble_standin

from serverless_agents.deployment.plan import plan_deployment
from serverless_agents.exceptions import ManifestError

ROOT = Path(__file__).resolve().parents[2]
AGENT = """
from serverless_agents import Phase, Resource, SyncAgentBase, TaskContext


class ShoutAgent(SyncAgentBase):
    task_type = "shout"

    def do(self, task: TaskContext) -> Resource:
        return Resource(phase=Phase.SUCCEEDED, outputs={"o0": str(task.inputs["text"]).upper()})
"""


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """code_path edits sys.path: give it back after the test, and forget the agent package."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m.split(".")[0] == "shouting_agents"]:
        del sys.modules[name]


def test_plan_imports_and_bundles_agents_from_the_code_path(tmp_path: Path, isolated_imports: None) -> None:
    package = tmp_path / "elsewhere" / "shouting_agents"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "shout.py").write_text(AGENT)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    manifest = deploy / "agents.toml"
    manifest.write_text(
        '[deployment]\ncode_path = ["../elsewhere"]\n\n'
        '[agents.shout]\nclass = "shouting_agents.shout:ShoutAgent"\n'
    )

    plan = plan_deployment(manifest)

    assert [a.name for a in plan.sync_agents] == ["shout"]
    assert agent_code(plan) == (package,)
    standin = assemble_standin(tmp_path / "standin", plan)
    assert (standin / "shouting_agents" / "shout.py").read_text() == AGENT


def test_a_code_path_that_is_no_folder_is_named(tmp_path: Path, isolated_imports: None) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text('[deployment]\ncode_path = ["../nowhere"]\n\n[agents.x]\nclass = "nowhere.x:X"\n')

    with pytest.raises(ManifestError, match=r"deployment\.code_path: '\.\./nowhere' is not a folder"):
        plan_deployment(manifest)


def test_synth_reports_a_bad_manifest_in_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.job]\nclass = "no_such_package.jobs:JobAgent"\n')
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT / "infra" / "cdk",
        env={
            **os.environ,
            "CDK_OUTDIR": str(tmp_path / "cdk.out"),
            "CDK_CONTEXT_JSON": json.dumps({"bundling": "skip", "manifest": str(manifest)}),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "app.py: cannot load agent class 'no_such_package.jobs:JobAgent': No module named 'no_such_package'"
    ]
