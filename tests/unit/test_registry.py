"""The agent registry: built from a manifest, keyed by (task type, version) and name, no duplicates."""

from __future__ import annotations

import importlib

import pytest

from serverless_agents.agent import AgentKind
from serverless_agents.deployment.manifest import (
    EXAMPLE_MANIFEST,
    AgentSettings,
    load_manifest,
    parse_manifest,
)
from serverless_agents.deployment.registry import AgentRegistry
from serverless_agents.examples import EchoAgent, JobAgent
from serverless_agents.exceptions import AgentNotFound, DuplicateAgentError

JOB = AgentSettings(class_path="serverless_agents.examples:JobAgent")
ECHO = AgentSettings(class_path="serverless_agents.examples:EchoAgent")


class JobAgentV2(JobAgent):
    task_type_version = 2


@pytest.fixture
def registry() -> AgentRegistry:
    return AgentRegistry.from_manifest(load_manifest(EXAMPLE_MANIFEST))


def test_from_manifest_registers_every_agent_with_its_settings(registry: AgentRegistry) -> None:
    assert len(registry) == 7
    assert {(entry.name, entry.cls) for entry in registry} >= {("job", JobAgent), ("echo", EchoAgent)}
    job = registry.by_name("job")
    assert (job.kind, job.task_type, job.version) == (AgentKind.ASYNC, "example_job", 0)
    assert job.settings.execution_timeout == 3600


def test_for_task_finds_the_agent_serving_the_task_category(registry: AgentRegistry) -> None:
    assert registry.for_task("example_job").name == "job"
    assert registry.for_task("example_echo", 0).cls is EchoAgent


@pytest.mark.parametrize(
    ("task_type", "version", "named"),
    [
        ("bigquery_query_job_task", 0, "'bigquery_query_job_task' version 0"),
        ("example_job", 1, "'example_job' version 1"),
    ],
)
def test_an_unknown_task_category_is_agent_not_found(
    registry: AgentRegistry, task_type: str, version: int, named: str
) -> None:
    with pytest.raises(AgentNotFound, match=named):
        registry.for_task(task_type, version)


def test_an_unknown_name_is_agent_not_found(registry: AgentRegistry) -> None:
    with pytest.raises(AgentNotFound, match="'nope'"):
        registry.by_name("nope")


def test_versions_of_one_task_type_are_separate_agents() -> None:
    registry = AgentRegistry()
    registry.register("job", JobAgent, JOB)
    registry.register("job-v2", JobAgentV2, JOB)

    assert registry.for_task("example_job", 0).name == "job"
    assert registry.for_task("example_job", 2).name == "job-v2"


def test_two_agents_for_one_task_category_are_rejected() -> None:
    manifest = parse_manifest(
        '[agents.first]\nclass = "serverless_agents.examples:JobAgent"\n'
        '[agents.second]\nclass = "serverless_agents.examples:JobAgent"\n'
    )

    expected = "'first' and 'second' both serve task type 'example_job' version 0"
    with pytest.raises(DuplicateAgentError, match=expected):
        AgentRegistry.from_manifest(manifest)


def test_a_repeated_name_is_rejected_and_changes_nothing() -> None:
    registry = AgentRegistry()
    registry.register("agent", JobAgent, JOB)

    with pytest.raises(DuplicateAgentError, match="'agent' is registered twice"):
        registry.register("agent", EchoAgent, ECHO)
    assert len(registry) == 1
    assert registry.by_name("agent").cls is JobAgent
    with pytest.raises(AgentNotFound):
        registry.for_task("example_echo")


def test_importing_agents_registers_nothing() -> None:
    assert importlib.import_module("serverless_agents.examples").JobAgent is JobAgent
    registry = AgentRegistry()

    assert len(registry) == 0
    assert list(registry) == []
    with pytest.raises(AgentNotFound):
        registry.for_task("example_job")


def test_a_sync_agent_allowed_longer_than_api_gateway_waits_is_a_manifest_error() -> None:
    from serverless_agents.exceptions import ManifestError

    manifest = parse_manifest('[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\ntimeout = 40\n')

    with pytest.raises(ManifestError, match=r"^agents\.echo\.timeout: 40 s is more than API Gateway's"):
        AgentRegistry.from_manifest(manifest)


def test_a_raised_api_timeout_admits_a_longer_sync_agent_and_async_agents_are_not_bound() -> None:
    manifest = parse_manifest(
        "[deployment]\napi_timeout = 60\n"
        '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\ntimeout = 40\n'
        '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\ntimeout = 300\n'
    )

    assert {agent.name for agent in AgentRegistry.from_manifest(manifest)} == {"echo", "job"}
