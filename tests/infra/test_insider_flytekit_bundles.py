"""A flytekit (or Flyte 2) connector in a deployment: the api and sweeper functions run from the core
bundle, which has no flytekit (nor flyte), and must still route its tasks. The bundle carries the
connectors' routes beside agents.toml (`registry.ROUTES_FILE`), and the api function's registry is built
from them, importing nothing of the connector's SDK.

The api function is played in a fresh interpreter whose path is the assembled bundle (project code, the
agents' code, the manifest) and the installed dependencies, with flytekit and flyte made unimportable, as in
the core bundle on Lambda."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from infra.cdk.serverless_agents_cdk.bundles import agent_family, assemble_standin

from serverless_agents.deployment.plan import plan_deployment
from serverless_agents.deployment.registry import ROUTES_FILE

MANIFEST = """
[agents.job]
class = "serverless_agents.examples:JobAgent"

[agents.countdown]
class = "{class_path}"
"""
#: The api function's start, as `functions/api` builds it (`wiring.task_service`), with flytekit gone.
_API_FUNCTION = """
import sys
for name in ("flytekit", "flytekitplugins", "flyte"):
    sys.modules[name] = None  # an import of it raises ImportError, as in the core bundle
from serverless_agents.runtime.wiring import task_service
from serverless_agents.runtime.settings import current_settings
registry = task_service(current_settings()).registry
print(registry.for_task(sys.argv[1]).name, registry.for_task(sys.argv[1]).kind.value)
print(registry.for_task("example_job").name)
print(any(m.startswith("flytekit") for m in sys.modules if sys.modules[m] is not None))
"""


@pytest.mark.parametrize(
    ("class_path", "task_type", "family"),
    [
        ("tests.functional.flytekit_connectors:CountdownConnector", "fk_countdown", "flytekit"),
        ("tests.functional.flyte2_connectors:CountdownConnector", "countdown", "flyte2"),
    ],
)
def test_the_core_bundles_api_function_routes_to_a_connector_without_its_sdk(
    tmp_path: Path, class_path: str, task_type: str, family: str
) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(MANIFEST.format(class_path=class_path))
    plan = plan_deployment(manifest)
    bundle = assemble_standin(tmp_path / "bundle", plan)
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(bundle), *(p for p in sys.path if "site-packages" in p)]),
        "SA_MANIFEST": str(bundle / "agents.toml"),
        "SA_TASKS_TABLE": "t",
        "SA_PAYLOAD_BUCKET": "b",
        "SA_STATE_MACHINE_ARN_PREFIX": "arn:aws:states:us-east-1:123456789012:stateMachine:sa-",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }

    done = subprocess.run(
        [sys.executable, "-S", "-c", _API_FUNCTION, task_type],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:3] == ["countdown async", "job", "False"]
    assert json.loads((bundle / ROUTES_FILE).read_text()) == {
        "countdown": {"kind": "async", "task_type": task_type, "version": 0}
    }
    assert {agent.name: agent_family(plan, agent) for agent in plan.agents} == {
        "job": "core",
        "countdown": family,
    }
