"""The project's wheel: built from exactly what the Dockerfile copies, with the Dockerfile's own `pip wheel`
command, installed (not editable) with the `local` and `adapter` extras into a fresh virtualenv, where
`serverless-agents adapter` runs from the installed package (the adapter image, without a Docker engine) and
`serverless-agents up --demo` runs from an empty directory: the state machine definition, the handlers and the
example manifest all come from the wheel. No package named `functions` is installed. The state machine
definitions' source is the top-level `statemachines/`, outside `src/`: the wheel carries it inside the
package, and the installed package renders it.

Marked `wheel`: it reaches the package index. The fresh virtualenv is filled by uv, from its cache after the
first run (pip spends a minute and a half there on index look-ups alone); `pytest -m "not wheel"` skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from serverless_agents.deployment.statemachine import AsyncAgentFunctions, render_definition

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEFINITION = "statemachines/async_agent.asl.json"

pytestmark = pytest.mark.wheel


def _build_stage() -> list[str]:
    """The Dockerfile's first stage, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", "", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[stages[0] : stages[1]]


def _copied(stage: list[str]) -> list[str]:
    """What the build stage's COPY lines take from the build context."""
    return [source for line in stage if line.startswith("COPY ") for source in line.split()[1:-1]]


def _run(
    command: list[str], cwd: Path | None = None, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # pip's and uv's index settings are kept; nothing of the dev venv leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    stage = _build_stage()
    for source in _copied(stage):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, context / source)
    build = next(line for line in stage if line.startswith("RUN pip wheel"))
    wheel_command = build.removeprefix("RUN ").split("&&")[0].split()
    assert wheel_command[:2] == ["pip", "wheel"], build
    out = tmp_path_factory.mktemp("wheels")
    arguments = [a if a != "/wheels" else str(out) for a in wheel_command[2:]]
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", *arguments], cwd=context)
    (built,) = out.glob("flyte_serverless_agents-*.whl")
    return built


@pytest.fixture(scope="module")
def environment(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, not editable, with what `up` and `adapter` need."""
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment)
    python = environment / "bin" / "python"
    _run([find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), f"{wheel}[local,adapter]"])
    return environment


def test_the_docker_context_holds_what_the_build_copies() -> None:
    # .dockerignore admits only what it names (after `*`): the wheel test copies the COPY sources itself,
    # so a source the context leaves out would pass here and fail `docker build`.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    admitted = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}

    assert "*" in lines
    assert {source.rstrip("/") for source in _copied(_build_stage())} <= admitted


def test_the_wheel_carries_the_package_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "serverless_agents/py.typed" in names
    assert "serverless_agents/adapter/server.py" in names
    # What `up` renders for every async agent: an installed wheel needs it as much as a checkout does. Its
    # source is the top-level folder; the wheel carries it inside the package, as it is.
    shipped = zipfile.ZipFile(wheel).read(f"serverless_agents/{DEFINITION}").decode()
    assert shipped == (ROOT / DEFINITION).read_text()
    # What `up` runs given no manifest, and the code its functions run.
    assert "serverless_agents/example_agents.toml" in names
    assert "serverless_agents/handlers/create.py" in names
    assert not [n for n in names if n.startswith(("tests/", "infra/", "bench/"))]


def test_the_wheel_installs_no_functions_package(wheel: Path, environment: Path, tmp_path: Path) -> None:
    # Lambda's entry points (functions/) go into the function bundles only: a top-level `functions` in
    # users' environments would shadow, or be shadowed by, their own.
    with zipfile.ZipFile(wheel) as archive:
        (record,) = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        installed = [line.split(",")[0] for line in archive.read(record).decode().splitlines()]
    assert [path for path in installed if path.startswith(("functions/", "functions.py"))] == []
    assert {path.split("/")[0] for path in installed if "/" in path} == {
        "serverless_agents",
        record.split("/")[0],
    }

    # From an empty directory: run from the work tree, `import functions` would find its folder.
    imported = _run(
        [str(environment / "bin" / "python"), "-c", "import functions"], cwd=tmp_path, check=False
    )
    assert imported.returncode == 1
    assert "ModuleNotFoundError: No module named 'functions'" in imported.stderr


def test_installed_wheel_runs_the_adapter(environment: Path) -> None:
    result = _run([str(environment / "bin" / "serverless-agents"), "adapter", "--help"])
    assert "--api" in result.stdout
    assert "--metrics-port" in result.stdout
    located = _run(
        [
            str(environment / "bin" / "python"),
            "-c",
            "import serverless_agents, grpc_health; print(serverless_agents.__file__)",
        ]
    )
    assert Path(located.stdout.strip()).is_relative_to(environment)  # installed, not the work tree


def test_installed_wheel_renders_the_definition_it_carries(environment: Path, tmp_path: Path) -> None:
    functions = AsyncAgentFunctions("aws", "arn:create", "arn:get", "arn:delete", 3600, listens=True)
    script = (
        "from importlib.resources import files; "
        "from serverless_agents.deployment import statemachine as s; "
        "print(files(s.DEFINITIONS_PACKAGE) / s.ASYNC_AGENT_DEFINITION); "
        f"print(s.render_definition({functions.substitutions()!r}))"
    )
    result = _run([str(environment / "bin" / "python"), "-c", script], cwd=tmp_path)
    source, rendered = result.stdout.split("\n", 1)

    assert Path(source).is_relative_to(environment)  # the wheel's copy, not the work tree's
    assert json.loads(rendered) == json.loads(render_definition(functions.substitutions()))


def test_installed_wheel_runs_the_demo_from_any_directory(environment: Path, tmp_path: Path) -> None:
    command = ["up", "--demo", "--exit-after-demo", "--port", "0", "--grpc-port", "0", "--aws-port", "0"]
    result = _run([str(environment / "bin" / "serverless-agents"), *command], cwd=tmp_path)

    (manifest,) = [
        line.removeprefix("manifest: ") for line in result.stdout.splitlines() if "manifest:" in line
    ]
    assert Path(manifest).is_relative_to(environment)  # the wheel's example manifest
    assert Path(manifest).name == "example_agents.toml"
    assert "SUCCEEDED: done" in result.stdout  # the async agent, through the installed handlers and ASL
    assert "SUCCEEDED: the condition is met" in result.stdout  # the FileSensor
    assert "demo finished" in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
