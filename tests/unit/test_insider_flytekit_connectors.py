"""A flytekit connector named in agents.toml becomes an agent that calls it as flytekit's connector service
does (flytekit/extend/backend/connector_service.py): here its lifecycle, in process, on moto's Secrets
Manager."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import FlyteContextManager
from flytekit.core.context_manager import SecretsManager
from flytekit.exceptions.user import FlyteUserException
from flytekit.extend.backend.base_connector import AsyncConnectorBase, Resource, SyncConnectorBase
from flytekit.extend.backend.utils import get_connector_secret
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate
from moto import mock_aws

from serverless_agents.agent import AgentKind, Phase
from serverless_agents.agents.flytekit_connector import (
    FlytekitAsyncConnectorAgent,
    FlytekitConnectorMetadata,
    FlytekitSyncConnectorAgent,
    connector_agent,
)
from serverless_agents.deployment.manifest import AgentSettings, parse_manifest
from serverless_agents.deployment.registry import AgentRegistry
from serverless_agents.exceptions import ManifestError, RetryableAgentError
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.translate import task_context
from serverless_agents.security.secrets import forget_secrets
from tests.agent_function import agent_function
from tests.functional.flyte_tasks import ExampleTask, create_request, decode_outputs
from tests.functional.flytekit_connectors import JOBS, CountdownConnector, CountdownMeta, RefusedConnector

CLASS_PATH = "tests.functional.flytekit_connectors:CountdownConnector"
TOKEN = "tok-0123456789abcdef"
COUNTDOWN = ExampleTask(
    "tests.fk_countdown",
    "fk_countdown",
    {"greeting": str, "xs": list[int]},
    {"greeting": str, "xs": list[int], "echo": str},
    polls=2,
)


class Probe(SyncConnectorBase):  # type: ignore[misc]
    """A sync connector that returns its secret, or fails the way a client library does (not flytekit's
    user error), as the template's custom says."""

    def __init__(self) -> None:
        super().__init__(task_type_name="fk_probe")

    def do(
        self,
        task_template: TaskTemplate,
        output_prefix: str,
        inputs: LiteralMap | None = None,
        **kwargs: object,
    ) -> Resource:
        if task_template.custom.get("fail"):
            raise KeyError("rows")
        return Resource(phase=TaskExecution.SUCCEEDED, outputs={"o0": get_connector_secret("token")})


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[None]:
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="fk-token", SecretString=TOKEN
        )["ARN"]
        manifest = tmp_path / "agents.toml"
        manifest.write_text(f'[agents.countdown]\nclass = "{CLASS_PATH}"\nsecrets = {{ token = "{arn}" }}\n')
        variables = {
            "SA_TASKS_TABLE": "t",
            "SA_PAYLOAD_BUCKET": "b",
            "SA_AGENT": "countdown",
            "SA_MANIFEST": str(manifest),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        forget_secrets()
        with agent_function(variables):
            yield
        forget_secrets()


def test_load_class_makes_an_agent_of_the_connectors_task_category() -> None:
    settings = AgentSettings(class_path=CLASS_PATH)

    cls = settings.load_class()

    assert issubclass(cls, FlytekitAsyncConnectorAgent)
    assert cls.connector_class is CountdownConnector
    assert (cls.kind, cls.task_type, cls.task_type_version) == (AgentKind.ASYNC, "fk_countdown", 0)
    assert settings.load_class() is cls
    assert connector_agent(Probe).kind is AgentKind.SYNC
    assert issubclass(connector_agent(Probe), FlytekitSyncConnectorAgent)
    manifest = parse_manifest(f'[agents.countdown]\nclass = "{CLASS_PATH}"\n')
    assert AgentRegistry.from_manifest(manifest).for_task("fk_countdown").name == "countdown"


def test_flytekits_older_agent_names_load_too() -> None:
    cls = AgentSettings(class_path="tests.functional.flytekit_connectors:RefusedConnector").load_class()

    assert cls.connector_class is RefusedConnector
    assert cls.task_type == "fk_refused"


def test_a_connector_class_that_cannot_be_made_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="cannot make flytekit connector"):
        connector_agent(AsyncConnectorBase)


def test_resource_meta_round_trips_and_outputs_are_typed_by_the_interface(environment: None) -> None:
    request = create_request(COUNTDOWN, {"greeting": "hi", "xs": [1, 2]}, "unit-fk")
    agent = connector_agent(CountdownConnector)()

    created = call_agent(agent.create, task_context("task-1", request))
    stored = FlytekitConnectorMetadata.model_validate_json(created.model_dump_json())  # as the table keeps it
    running = call_agent(agent.get, stored)
    done = call_agent(agent.get, stored)
    call_agent(agent.delete, stored)

    (job,) = [job for job in JOBS.values() if job["run"] == "unit-fk"]
    assert job["values"] == {"greeting": "hi", "xs": [1, 2]}
    assert job["output_prefix"] == request.output_prefix
    first, second = job["metas"]
    assert first == second
    assert second == CountdownMeta(
        job_id=first.job_id,
        polls=2,
        ratio=0.25,
        has_output=True,
        tags=["a", "b"],
        limits={"rows": 10},
        labels=["x"],
    )
    assert (job["gets"], job["deletes"]) == (2, 1)
    assert running.phase is Phase.RUNNING
    assert done.phase is Phase.SUCCEEDED
    assert done.log_links[0].name == "Countdown"
    assert done.custom_info == {"job_id": first.job_id}
    # The connector put its secret in an output and a message: both leave masked.
    assert done.message == "done with {secret:token}"
    assert done.outputs is not None
    assert decode_outputs(COUNTDOWN, done.outputs) == {
        "greeting": "hi!",
        "xs": [2, 4],
        "echo": "{secret:token}",
    }


def test_get_connector_secret_answers_from_the_manifest_only_inside_the_call(
    environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_FSEC_TOKEN", "from-the-environment")  # where flytekit itself looks first
    agent = connector_agent(Probe)()
    request = create_request(ExampleTask("tests.probe", "fk_probe", {}, {"o0": str}), {}, "unit-se")

    resource = call_agent(agent.do, task_context("task-2", request))

    assert resource.outputs is not None
    assert resource.outputs.literals["o0"].scalar.primitive.string_value == "{secret:token}"
    # Outside a connector call flytekit's own secrets manager is back.
    assert get_connector_secret("token") == "from-the-environment"
    assert type(FlyteContextManager.current_context().user_space_params.secrets) is SecretsManager


def test_a_user_error_is_failed_and_any_other_exception_retryable(environment: None) -> None:
    request = create_request(ExampleTask("tests.refused", "fk_refused", {}, {}), {}, "unit-rf")

    with pytest.raises(FlyteUserException, match="syntax error at line 1") as refused:
        call_agent(connector_agent(RefusedConnector)().create, task_context("task-3", request))
    failing = create_request(ExampleTask("tests.probe", "fk_probe", {}, {}, fail=True), {}, "unit-rf")
    with pytest.raises(RetryableAgentError, match="KeyError: 'rows'"):
        call_agent(connector_agent(Probe)().do, task_context("task-4", failing))

    assert type(refused.value).__name__ == "FlyteUserException"  # Lambda's errorType: not retried, FAILED
    assert "\n" not in str(refused.value)


def test_the_secret_a_connector_logs_is_masked(environment: None, caplog: pytest.LogCaptureFixture) -> None:
    request = create_request(COUNTDOWN, {"greeting": "hi", "xs": []}, "unit-log")
    caplog.set_level(logging.WARNING)

    call_agent(connector_agent(CountdownConnector)().create, task_context("task-5", request))

    assert TOKEN not in caplog.text
    assert "connecting with token {secret:token}" in caplog.text


@pytest.mark.parametrize(
    "route",
    [{"kind": "sensor", "task_type": "x", "version": 0}, {"kind": "async", "version": 0}, {"kind": "sync"}],
)
def test_a_malformed_route_in_a_bundle_is_a_manifest_error_naming_the_agent(route: dict[str, object]) -> None:
    manifest = parse_manifest(f'[agents.countdown]\nclass = "{CLASS_PATH}"\n')

    with pytest.raises(ManifestError, match="route of agent 'countdown'"):
        AgentRegistry.from_manifest(manifest, {"countdown": route})


def test_a_routed_connector_agent_routes_like_the_loaded_one() -> None:
    manifest = parse_manifest(f'[agents.countdown]\nclass = "{CLASS_PATH}"\n')
    routes = AgentRegistry.from_manifest(manifest).connector_routes()

    routed = AgentRegistry.from_manifest(manifest, routes).for_task("fk_countdown")

    assert routes == {"countdown": {"kind": "async", "task_type": "fk_countdown", "version": 0}}
    assert (routed.name, routed.kind, routed.version) == ("countdown", AgentKind.ASYNC, 0)
    assert not issubclass(routed.cls, FlytekitAsyncConnectorAgent)  # nothing of flytekit was needed
