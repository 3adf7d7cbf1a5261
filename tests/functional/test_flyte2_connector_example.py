"""docs/connectors.md, "A Flyte 2 connector, start to finish", done as the page says: its connector and task
class as `my_connectors/`, its manifest, `serverless-agents up` in a process of its own, its `try_timer.py`
(the executor's calls over flyteidl2's connector service) in another, and its in-process test under pytest.

The page's fixed ports (8080, 8000, 4566) become free ones: the test reads the addresses `up` prints.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.functional.pages import blocks, run_there, running_up

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "connectors.md").read_text()
SECTION = PAGE[
    PAGE.index("## A Flyte 2 connector, start to finish") : PAGE.index("## Flyte 2 connectors' secrets")
]


def block(language: str, having: str) -> str:
    (found,) = [b for b in blocks(SECTION, language) if having in b]
    return found


def transcript(command: str) -> list[str]:
    """What the page says `command` prints."""
    (said,) = re.findall(rf"^```\n\$ [^\n]*{re.escape(command)}\n(.*?)```", SECTION, re.DOTALL | re.MULTILINE)
    return said.splitlines()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The page's files, laid out as it says."""
    (tmp_path / "my_connectors").mkdir()
    (tmp_path / "my_connectors" / "__init__.py").write_text("")
    (tmp_path / "my_connectors" / "timer.py").write_text(block("python", "class TimerConnector"))
    (tmp_path / "my_connectors" / "timer_task.py").write_text(block("python", "class TimerTask"))
    (tmp_path / "timers.toml").write_text(block("toml", "TimerConnector"))
    return tmp_path


def test_the_pages_connector_runs_its_task_through_up_as_the_executor_calls_it(project: Path) -> None:
    script = block("python", "AsyncConnectorServiceStub")
    (command,) = [line for line in SECTION.splitlines() if line.startswith("$ ") and " up " in line]
    flags = shlex.split(command)[2:]  # after `$ .../serverless-agents`
    assert flags == ["up", "--manifest", "timers.toml"]

    with running_up(project, flags) as up:
        adapter = up.read_until(r"gRPC adapter on (127\.0\.0\.1:\d+)")[1]
        up.read_until(r"agent timer: async, task type 'timer'")
        assert "127.0.0.1:8000" in script
        (project / "try_timer.py").write_text(script.replace("127.0.0.1:8000", adapter))
        tried = run_there(project, "try_timer.py")

    assert tried.returncode == 0, tried.stderr[-3000:]
    assert tried.stdout.splitlines() == transcript("try_timer.py")
    events = [line.rstrip("\n") for line in up.seen if line.startswith("task ")]
    said = [line for line in SECTION.splitlines() if line.startswith("task timer_")]
    # The task id is the page's (it derives from the run, the action and the attempt); how many lines
    # the start takes depends on when `up` first sees the task, the ending does not.
    assert events[0].startswith(said[0].split(", ")[0])
    assert events[-1] == said[-1]
    assert not [line for line in up.seen if "Traceback" in line or "Exception" in line]


def test_the_pages_in_process_test_of_the_connector_passes(project: Path) -> None:
    (project / "test_timer.py").write_text(block("python", "LocalAgent"))

    done = run_there(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_timer.py")

    assert done.returncode == 0, done.stdout[-3000:]
    assert done.stdout.splitlines()[-1].startswith("1 passed")
