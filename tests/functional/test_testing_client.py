"""`serverless_agents.testing.AgentTestClient`: what an agent author's tests call, on every kind of agent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_agents.agent import Phase
from serverless_agents.testing import AgentTestClient

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-client"

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }  # a waiting job, not a busy loop, while cancel is tested

[agents.echo]
class = "serverless_agents.examples:EchoAgent"

[agents.moody]
class = "tests.functional.agents:MoodySensor"

[[agents.moody.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = { bucket = { name = ["moods"] } }
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest) as running:
        yield running


def test_run_drives_an_async_task_to_its_outputs(client: AgentTestClient) -> None:
    result = client.run("example_job", inputs={"n": 3}, outputs={"n": int, "polls": int}, custom={"polls": 2})

    assert (result.phase, result.message, result.outputs) == (Phase.SUCCEEDED, "done", {"n": 3, "polls": 2})
    assert "Step Functions execution" in [link.name for link in result.log_links]
    assert result.task_id


def test_run_answers_a_sync_task_at_once(client: AgentTestClient) -> None:
    result = client.run("example_echo", inputs={"text": "ping"}, outputs={"text": str})

    assert (result.phase, result.outputs) == (Phase.SUCCEEDED, {"text": "ping"})


def test_an_upload_fires_a_waiting_sensor(client: AgentTestClient) -> None:
    task_id = client.start("moody_sensor", inputs={"bucket": "moods", "key": "today"})
    client.upload("s3://moods/today", b"yes")

    assert client.wait(task_id).phase is Phase.SUCCEEDED


def test_cancel_aborts_a_running_task(client: AgentTestClient) -> None:
    task_id = client.start("example_job", inputs={"n": 1}, outputs={"n": int}, custom={"polls": 10_000})
    client.cancel(task_id)

    assert client.wait(task_id).phase is Phase.ABORTED


def test_the_pages_run_local_script_prints_what_the_page_says(tmp_path: Path) -> None:
    """docs/writing-agents.md, "Run it locally", done as the page says: its agents, manifest and script."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "writing-agents.md").read_text()
    section = page[page.index("## Run it locally") : page.index("## A sensor under `serverless-agents up`")]
    python = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    (sensor,) = [b for b in python if "class SuccessMarkerSensor" in b]
    (square,) = [b for b in python if "class SquareAgent" in b]
    (manifest,) = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)
    (script,) = [
        b for b in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL) if "AgentTestClient" in b
    ]
    (transcript,) = re.findall(r"^```\n(\$ [^\n]*run_local\.py\n.*?)```", section, re.DOTALL | re.MULTILINE)
    (tmp_path / "my_agents").mkdir()
    (tmp_path / "my_agents" / "__init__.py").write_text("")
    (tmp_path / "my_agents" / "markers.py").write_text(sensor)
    (tmp_path / "my_agents" / "square.py").write_text(square)
    (tmp_path / "my-agents.toml").write_text(manifest)
    (tmp_path / "run_local.py").write_text(script)

    done = subprocess.run(
        [sys.executable, "run_local.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": "."},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == transcript.splitlines()[1:]


def test_a_failed_task_is_its_one_line_message_not_emulator_internals(tmp_path: Path) -> None:
    # Seen: a failed task printed about 4.5 KB of moto's Step Functions internals to stderr (logging's last
    # resort handler, in a script with no logging set up); under `up` the same failure is one line. Run as a
    # user runs it: a script of its own, not under pytest's log capture.
    (tmp_path / "run_failing.py").write_text(
        "from serverless_agents.manifest import EXAMPLE_MANIFEST\n"
        "from serverless_agents.testing import AgentTestClient\n"
        "with AgentTestClient(EXAMPLE_MANIFEST) as client:\n"
        "    r = client.run('example_job', {'n': 1}, {'n': int}, custom={'raise_on': 'get'})\n"
        "    print(r.phase.name, r.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "run_failing.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "FAILED AgentError: the example platform lost track of the job (raise_on=get)\n"
    assert done.stderr == ""
