"""The deploy-time check of an agent's stored metadata (#21 item 3, `serverless_agents.deployment.evolution`):
the CDK app refuses, before building anything, a deploy whose async agent's `ResourceMetadata` lost a field,
changed a field's type or gained one without a default since the lock beside the manifest, naming the agent
and the field; it writes the lock on a first deploy and after a compatible change; an operator's
`accept_metadata_changes` lets a named agent's change through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infra.cdk.serverless_agents_cdk.app import build_app
from pydantic import BaseModel

from serverless_agents.examples import JobMetadata
from serverless_agents.exceptions import ManifestError
from tests.infra.conftest import offline

MANIFEST = """[deployment]
name = "evolving"

[agents.job]
class = "serverless_agents.examples:JobAgent"

[agents.echo]
class = "serverless_agents.examples:EchoAgent"
"""


def deploy(directory: Path, accept: str | None = None) -> None:
    """What `cdk synth` / `cdk deploy` runs first: the app built from the manifest (bundling skipped)."""
    manifest = directory / "agents.toml"
    manifest.write_text(MANIFEST)
    context = {"manifest": str(manifest), "bundling": "skip"}
    if accept is not None:
        context["accept_metadata_changes"] = accept
    with offline():
        build_app(context, outdir=str(directory / "cdk.out"))


def lock_path(directory: Path) -> Path:
    """Beside the manifest (`evolution.lock_path`), spelled out: the file an operator commits."""
    return directory / "agents.metadata.lock.json"


def locked(directory: Path, schema: dict[str, object]) -> Path:
    """The lock a previous deploy wrote, with `schema` as agent `job`'s metadata then."""
    path = lock_path(directory)
    path.write_text(json.dumps({"version": 1, "agents": {"job": schema}}))
    return path


class Before(BaseModel):
    """Agent `job`'s metadata at the previous deploy: today's, and a field since removed."""

    job_id: str
    bucket: str
    region: str


def test_the_cdk_app_refuses_a_removed_metadata_field_naming_the_agent_and_field(tmp_path: Path) -> None:
    lock = locked(tmp_path, Before.model_json_schema())
    before = lock.read_text()

    with pytest.raises(ManifestError, match=r"agent 'job': field 'region' was removed"):
        deploy(tmp_path)

    assert lock.read_text() == before  # nothing written


def test_the_cdk_app_refuses_a_changed_metadata_type(tmp_path: Path) -> None:
    class Retyped(BaseModel):
        job_id: int
        bucket: str

    locked(tmp_path, Retyped.model_json_schema())

    with pytest.raises(ManifestError, match=r"agent 'job': field 'job_id' changed type"):
        deploy(tmp_path)


def test_the_cdk_app_refuses_a_new_metadata_field_without_default(tmp_path: Path) -> None:
    class Older(BaseModel):
        job_id: str

    locked(tmp_path, Older.model_json_schema())

    with pytest.raises(ManifestError, match=r"agent 'job': new field 'bucket' has no default"):
        deploy(tmp_path)


def test_an_operators_accept_lets_the_change_through_and_locks_the_new_schema(tmp_path: Path) -> None:
    lock = locked(tmp_path, Before.model_json_schema())

    deploy(tmp_path, accept="job")

    assert json.loads(lock.read_text())["agents"] == {"job": JobMetadata.model_json_schema()}


def test_a_first_deploy_writes_the_lock_of_its_async_agents(tmp_path: Path) -> None:
    deploy(tmp_path)

    lock = json.loads(lock_path(tmp_path).read_text())
    assert lock == {"version": 1, "agents": {"job": JobMetadata.model_json_schema()}}  # no sync agent


def test_a_new_field_with_a_default_is_compatible_and_relocked(tmp_path: Path) -> None:
    from serverless_agents.deployment.evolution import check_and_lock

    class Grown(JobMetadata):
        attempt: int = 1
        region: str | None = None

    locked(tmp_path, JobMetadata.model_json_schema())

    assert check_and_lock(tmp_path / "agents.toml", {"job": Grown.model_json_schema()})
    assert not check_and_lock(tmp_path / "agents.toml", {"job": Grown.model_json_schema()})  # unchanged


def test_nested_models_are_compared_field_by_field() -> None:
    from serverless_agents.deployment.evolution import incompatibilities

    class Inner(BaseModel):
        arn: str
        cluster: str

    class Outer(BaseModel):
        task: Inner

    class InnerAfter(BaseModel):
        arn: str
        cluster: str = "default"
        attempt: int

    class OuterAfter(BaseModel):
        task: InnerAfter

    assert incompatibilities(Outer.model_json_schema(), OuterAfter.model_json_schema()) == [
        "new field 'task.attempt' has no default (records written before lack it)"
    ]


def test_accepting_an_agent_the_manifest_does_not_deploy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"accept_metadata_changes names \['jbo'\]"):
        deploy(tmp_path, accept="jbo")


def test_a_metadata_type_without_a_json_schema_is_a_manifest_error_naming_the_agent() -> None:
    from types import SimpleNamespace

    from pydantic import ConfigDict

    from serverless_agents.agent import AgentKind
    from serverless_agents.deployment.evolution import metadata_schemas

    class Handle:
        """Not JSON: no record could hold it."""

    class Opaque(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        handle: Handle

    agent = SimpleNamespace(name="opaque", kind=AgentKind.ASYNC, cls=SimpleNamespace(metadata_type=Opaque))

    with pytest.raises(ManifestError, match=r"agent 'opaque': its metadata_type Opaque has no JSON schema"):
        metadata_schemas([agent])  # type: ignore[list-item]
