"""The manifest: parsing, defaults, errors that name the bad key, poll backoff and agent class loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_agents.agent import AgentKind, SyncAgentBase
from serverless_agents.deployment.manifest import (
    EXAMPLE_MANIFEST,
    AgentSettings,
    PollBackoff,
    load_manifest,
    parse_manifest,
)
from serverless_agents.examples import JobAgent
from serverless_agents.exceptions import AgentNotFound, ManifestError


class NotAnAgent:
    task_type = "not_an_agent"


class AgentWithoutTaskType(SyncAgentBase):
    pass


def manifest_error(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="test.toml")
    return str(caught.value)


def test_the_example_manifest_loads() -> None:
    manifest = load_manifest(EXAMPLE_MANIFEST)

    assert manifest.deployment.name == "serverless-agents"
    assert set(manifest.agents) == {"job", "echo", "files", "snowflake", "ecs", "chatgpt", "webhook"}
    job = manifest.agent("job")
    assert job.class_path == "serverless_agents.examples:JobAgent"
    assert (job.memory, job.timeout, job.execution_timeout) == (256, 30, 3600)
    assert job.poll == PollBackoff(initial=1, factor=1.5, cap=60)
    assert manifest.agent("echo").timeout == 10
    files = manifest.agent("files")
    assert files.schedule_seconds == 60
    assert files.events[0]["detail"] == {"bucket": {"name": ["my-landing-bucket"]}}


def test_omitted_settings_take_their_defaults() -> None:
    manifest = parse_manifest('[agents.mine]\nclass = "pkg.mod:Agent"\n')

    assert manifest.deployment.name == "serverless-agents"
    settings = manifest.agent("mine")
    assert (settings.memory, settings.timeout, settings.execution_timeout) == (256, 29, 86_400)
    assert manifest.deployment.api_timeout == 29
    assert settings.poll == PollBackoff(initial=5, factor=2.0, cap=300)
    assert settings.secrets == {}


def test_an_unknown_agent_name_is_agent_not_found() -> None:
    manifest = parse_manifest('[agents.mine]\nclass = "pkg.mod:Agent"\n')

    with pytest.raises(AgentNotFound, match="'other'"):
        manifest.agent("other")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[agents.job]\nclass = "pkg.mod:Agent"\nmemroy = 512\n', "agents.job.memroy"),
        ('[agents.Bad_Name]\nclass = "pkg.mod:Agent"\n', "Bad_Name"),
        ("[agents.job]\nmemory = 512\n", "agents.job.class"),
        ('[agents.job]\nclass = "pkg.mod:Agent"\nmemory = 64\n', "agents.job.memory"),
        ('[agents.job]\nclass = "pkg.mod:Agent"\nmemory = 20000\n', "agents.job.memory"),
        (
            '[agents.job]\nclass = "pkg.mod:Agent"\npoll = { initial = 5, factor = 0.5 }\n',
            "agents.job.poll.factor",
        ),
        ('[agents.job]\nclass = "not a path"\n', "agents.job.class"),
        ('[deployment]\nname = "Upper"\n[agents]\n', "deployment.name"),
        # Requirement specifiers only: a pip option would reach pip's command line at bundle time.
        (
            '[agents.job]\nclass = "pkg.mod:Agent"\nrequirements = ["--index-url=http://x"]\n',
            "agents.job.requirements.0",
        ),
        ('[agents.job]\nclass = "pkg.mod:Agent"\nrequirements = ["-e ."]\n', "agents.job.requirements.0"),
        (
            '[agents.job]\nclass = "pkg.mod:Agent"\nrequirements = ["ok==1", "x\\n--pre"]\n',
            "agents.job.requirements.1",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-agent-name",
        "missing-class",
        "memory-low",
        "memory-high",
        "factor",
        "class",
        "dep",
        "requirement-option",
        "requirement-editable",
        "requirement-two-lines",
    ],
)
def test_invalid_settings_are_manifest_errors_naming_the_key(text: str, expected: str) -> None:
    message = manifest_error(text)

    assert message.startswith("test.toml: ")
    assert expected in message


def test_requirements_take_what_pip_reads_as_requirements() -> None:
    accepted = [
        "httpx==0.27.0",
        "requests[socks]>=2,<3",
        "tomli; python_version < '3.11'",
        "pkg @ https://e/p.whl",  # a direct reference: allowed here (test_insider_manifest refuses it)
    ]
    toml = ", ".join(f'"{r}"' for r in accepted)
    manifest = parse_manifest(
        f'[agents.job]\nclass = "pkg.mod:Agent"\nrequirements = [{toml}]\nallow_direct_references = true\n'
    )

    assert manifest.agent("job").requirements == accepted


def test_bad_toml_is_a_manifest_error_naming_the_source() -> None:
    assert manifest_error("[agents.job\nclass = ").startswith("test.toml: ")


@pytest.mark.parametrize("name", ["missing.toml", "."])
def test_an_unreadable_path_is_a_manifest_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name

    with pytest.raises(ManifestError, match="cannot read manifest") as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("polls", "seconds"), [(-3, 5), (0, 5), (1, 10), (2, 20), (5, 160), (6, 300), (40, 300)]
)
def test_wait_after_grows_from_initial_by_factor_up_to_cap(polls: int, seconds: int) -> None:
    assert PollBackoff(initial=5, factor=2.0, cap=300).wait_after(polls) == seconds


def test_wait_after_with_factor_one_stays_at_initial() -> None:
    backoff = PollBackoff(initial=7, factor=1.0, cap=300)

    assert {backoff.wait_after(polls) for polls in range(100)} == {7}


def test_wait_after_rounds_fractional_growth_down_to_whole_seconds() -> None:
    backoff = PollBackoff(initial=1, factor=1.5, cap=60)

    assert [backoff.wait_after(polls) for polls in range(4)] == [1, 1, 2, 3]


def test_wait_after_stays_at_cap_for_a_very_long_job() -> None:
    # A job may run for execution_timeout = 1 year: at cap 300 s that is ~100,000 polls.
    assert PollBackoff(initial=5, factor=2.0, cap=300).wait_after(2000) == 300


def test_load_class_imports_the_named_agent() -> None:
    cls = AgentSettings(class_path="serverless_agents.examples:JobAgent").load_class()

    assert cls is JobAgent
    assert (cls.kind, cls.task_type) == (AgentKind.ASYNC, "example_job")


@pytest.mark.parametrize(
    ("class_path", "expected"),
    [
        ("no_such_module_for_tests.agents:Agent", "cannot load agent class"),
        ("serverless_agents.examples:NoSuchAgent", "cannot load agent class"),
        ("tests.unit.test_manifest:NotAnAgent", "is not an AsyncAgentBase, SyncAgentBase or BaseSensor"),
        ("tests.unit.test_manifest:AgentWithoutTaskType", "declares no task_type"),
    ],
    ids=["missing-module", "missing-attribute", "not-an-agent", "no-task-type"],
)
def test_load_class_errors_name_the_class_path(class_path: str, expected: str) -> None:
    with pytest.raises(ManifestError, match=expected) as caught:
        AgentSettings(class_path=class_path).load_class()
    assert class_path in str(caught.value)
