"""The adapter image's wheel: built from exactly what the Dockerfile copies, with the Dockerfile's own `pip
wheel` command, installed (not editable) with the `adapter` extra into a fresh virtualenv, where
`serverless-agents adapter` runs from the installed package. No Docker engine is needed for that much.

Marked `wheel`: it reaches the package index. The fresh virtualenv is filled by uv, from its cache after the
first run (pip spends a minute and a half there on index look-ups alone); `pytest -m "not wheel"` skips it.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

pytestmark = pytest.mark.wheel


def _build_stage() -> list[str]:
    """The Dockerfile's first stage, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", "", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    return lines[stages[0] : stages[1]]


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # pip's and uv's index settings are kept; nothing of the dev venv leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    stage = _build_stage()
    for line in stage:
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
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


def test_the_wheel_carries_the_package_and_its_marker(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "serverless_agents/py.typed" in names
    assert "serverless_agents/adapter/server.py" in names
    # What `up` renders for every async agent: an installed wheel needs it as much as a checkout does.
    assert "serverless_agents/statemachines/async_agent.asl.json" in names
    assert not [n for n in names if n.startswith(("tests/", "infra/", "bench/"))]


def test_installed_wheel_runs_the_adapter(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment)
    python = environment / "bin" / "python"
    _run([find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), f"{wheel}[adapter]"])

    result = _run([str(environment / "bin" / "serverless-agents"), "adapter", "--help"])
    assert "--api" in result.stdout
    assert "--metrics-port" in result.stdout
    located = _run(
        [str(python), "-c", "import serverless_agents, grpc_health; print(serverless_agents.__file__)"]
    )
    assert Path(located.stdout.strip()).is_relative_to(environment)  # installed, not the work tree
