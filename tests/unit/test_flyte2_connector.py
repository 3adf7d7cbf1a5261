"""A Flyte 2 connector named in agents.toml becomes an async agent that calls it as flyte-sdk's own
connector server does (flyte/connectors/_server.py): here its whole lifecycle, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_agents.agent import AgentKind, Phase, resolve
from serverless_agents.agents.flyte2_connector import ConnectorAgent, ConnectorMetadata, connector_agent
from serverless_agents.deployment.manifest import AgentSettings, parse_manifest
from serverless_agents.deployment.registry import AgentRegistry
from serverless_agents.exceptions import InvalidRequest
from serverless_agents.runtime.translate import encode_outputs, task_context
from serverless_agents.testing import task_request
from tests.agent_function import agent_function
from tests.functional.flyte2_connectors import JOBS, CountdownConnector, fingerprint
from tests.functional.flyte_tasks import ExampleTask, create_request, decode_outputs

CLASS_PATH = "tests.functional.flyte2_connectors:CountdownConnector"


def test_load_class_makes_an_async_agent_of_the_connectors_task_category() -> None:
    settings = AgentSettings(class_path=CLASS_PATH)

    cls = settings.load_class()

    assert issubclass(cls, ConnectorAgent)
    assert cls.connector_class is CountdownConnector
    assert (cls.kind, cls.task_type, cls.task_type_version) == (AgentKind.ASYNC, "countdown", 0)
    assert settings.load_class() is cls
    manifest = parse_manifest(f'[agents.countdown]\nclass = "{CLASS_PATH}"\n')
    assert AgentRegistry.from_manifest(manifest).for_task("countdown").name == "countdown"


def test_the_connector_runs_create_get_delete_with_the_sdks_values(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(f'[agents.countdown]\nclass = "{CLASS_PATH}"\n')
    task = ExampleTask(
        "tests.countdown",
        "countdown",
        {"greeting": str, "xs": list[int]},
        {"greeting": str, "total": int, "token": str},
        polls=1,
        configs={"region": "r1"},
    )
    request = create_request(task, {"greeting": "hi", "xs": [1, 2]}, "unit-run")
    agent = connector_agent(CountdownConnector)()
    environment = {
        "SA_TASKS_TABLE": "t",
        "SA_PAYLOAD_BUCKET": "b",
        "SA_AGENT": "countdown",
        "SA_MANIFEST": str(manifest),
    }

    with agent_function(environment):
        created = resolve(agent.create(task_context("task-1", request)))
        stored = ConnectorMetadata.model_validate_json(created.model_dump_json())  # as the table keeps it
        resource = resolve(agent.get(stored))
        resolve(agent.delete(stored))

    (job,) = [job for job in JOBS.values() if job["run"] == "unit-run"]
    assert job["inputs"] == {"greeting": "hi", "xs": [1, 2]}
    assert job["output_prefix"] == request.output_prefix
    assert job["token"] == fingerprint("")  # no secrets in this manifest
    assert (job["gets"], job["deletes"]) == (1, 1)
    assert stored.configs == {"region": "r1"}
    assert resource.phase is Phase.SUCCEEDED
    assert resource.custom_info["region"] == "r1"
    assert resource.log_links[0].uri == "https://countdown.invalid/r1/jobs/x"
    outputs = encode_outputs(resource.outputs, request.template)
    assert outputs is not None
    assert decode_outputs(task, outputs) == {"greeting": "hi!", "total": 3, "token": fingerprint("")}


@pytest.mark.parametrize("configs", [{"region": 1}, ["region"], "region"])
def test_configs_that_are_not_strings_are_refused(configs: object) -> None:
    request = task_request("countdown", {}, {}, custom={"configs": configs})

    with pytest.raises(InvalidRequest, match=r"Connection\.configs") as error:
        resolve(connector_agent(CountdownConnector)().create(task_context("task-1", request)))
    assert error.value.field == "template.custom.configs"
