"""The compiled manifest (what a function reads, without pydantic) says what the manifest says.

`manifest.compile_manifest` dumps the validated models; `compiled_manifest.read_compiled` reads the dump
into views. Every field of every model must read the same through the view as through the model, the
methods must answer the same, and the plan made from the view must be the plan made from the models: for
the example manifest and the benchmarks' manifests.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from serverless_agents.deployment.compiled_manifest import compiled_path, read_compiled
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST, Manifest, compile_manifest, load_manifest
from serverless_agents.deployment.plan import DeploymentPlan, plan_deployment
from serverless_agents.exceptions import AgentNotFound, ManifestError
from serverless_agents.runtime.loading import cached_manifest

ROOT = Path(__file__).parents[2]
MANIFESTS = [EXAMPLE_MANIFEST, ROOT / "bench" / "agents.toml", ROOT / "bench" / "flytekit_connectors.toml"]


def compiled_beside(manifest: Path, folder: Path) -> Path:
    """`manifest` copied into `folder` as a bundle holds it: with its compiled form beside it."""
    copy = folder / "agents.toml"
    shutil.copyfile(manifest, copy)
    compiled_path(copy).write_text(compile_manifest(copy))
    return copy


def differences(model: Any, view: Any, path: str = "manifest") -> list[str]:
    """Where `view` reads otherwise than `model`, field by field down every nested model."""
    if isinstance(model, BaseModel):
        found = []
        for name in type(model).model_fields:
            found += differences(getattr(model, name), getattr(view, name), f"{path}.{name}")
        return found
    if isinstance(model, list) and isinstance(view, list) and len(model) == len(view):
        return [
            d
            for i, (m, v) in enumerate(zip(model, view, strict=True))
            for d in differences(m, v, f"{path}[{i}]")
        ]
    if isinstance(model, dict) and isinstance(view, dict) and list(model) == list(view):  # order too
        return [d for key in model for d in differences(model[key], view[key], f"{path}[{key!r}]")]
    same = type(model) is type(view) and model == view
    return [] if same else [f"{path}: {model!r} (model) != {view!r} (compiled)"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_field_reads_the_same_compiled(manifest: Path, tmp_path: Path) -> None:
    copy = compiled_beside(manifest, tmp_path)
    model, view = load_manifest(copy), read_compiled(copy)

    assert view is not None
    assert differences(model, view) == []


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_the_methods_answer_the_same_compiled(manifest: Path, tmp_path: Path) -> None:
    copy = compiled_beside(manifest, tmp_path)
    model, view = load_manifest(copy), read_compiled(copy)
    assert view is not None

    for name, settings in model.agents.items():
        compiled = view.agent(name)
        assert compiled.secret_ids == settings.secret_ids
        assert compiled.schedule_seconds == settings.schedule_seconds
        assert [compiled.poll.wait_after(n) for n in range(-1, 80)] == [
            settings.poll.wait_after(n) for n in range(-1, 80)
        ]
        assert compiled.load_class() is settings.load_class()
    with pytest.raises(AgentNotFound, match="no agent named 'nobody'"):
        view.agent("nobody")


def _without_settings(plan: DeploymentPlan) -> DeploymentPlan:
    return dataclasses.replace(plan, agents=tuple(dataclasses.replace(a, settings=None) for a in plan.agents))  # type: ignore[arg-type]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_the_plan_is_the_same_from_the_compiled_form(manifest: Path, tmp_path: Path) -> None:
    copy = compiled_beside(manifest, tmp_path)
    view = read_compiled(copy)
    assert view is not None

    from_models, from_view = plan_deployment(copy), plan_deployment(copy, manifest=view)  # type: ignore[arg-type]

    assert _without_settings(from_view) == _without_settings(from_models)
    for planned, compiled in zip(from_models.agents, from_view.agents, strict=True):
        assert differences(planned.settings, compiled.settings, planned.name) == []


def test_a_compiled_form_of_another_text_is_not_read(tmp_path: Path) -> None:
    copy = compiled_beside(EXAMPLE_MANIFEST, tmp_path)
    copy.write_text(copy.read_text().replace("timeout = 10", "timeout = 11"))  # edited after the build

    assert read_compiled(copy) is None
    assert isinstance(cached_manifest(copy), Manifest)  # the TOML, parsed
    assert load_manifest(copy).agent("echo").timeout == 11


def test_without_a_compiled_form_the_toml_is_parsed(tmp_path: Path) -> None:
    copy = tmp_path / "agents.toml"
    shutil.copyfile(EXAMPLE_MANIFEST, copy)

    assert read_compiled(copy) is None
    assert isinstance(cached_manifest(copy), Manifest)


def test_a_bundle_reads_its_manifest_compiled(tmp_path: Path) -> None:
    copy = compiled_beside(EXAMPLE_MANIFEST, tmp_path)

    assert not isinstance(cached_manifest(copy), BaseModel)
    assert differences(load_manifest(copy), cached_manifest(copy)) == []


def test_an_invalid_manifest_does_not_compile(tmp_path: Path) -> None:
    bad = tmp_path / "agents.toml"
    bad.write_text('[agents.x]\nclass = "a.b:C"\nmemory = 1\n')

    with pytest.raises(ManifestError, match="memory"):
        compile_manifest(bad)
