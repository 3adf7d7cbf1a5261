"""docs/writing-agents.md, "A sensor under `serverless-agents up`", done as the page says: its sensor, its
manifest (agent code found through `code_path`, no PYTHONPATH for it), `serverless-agents up` with its flags
in a process of its own, and its `fire_marker.py` in another, which creates a task over the HTTP API and
uploads the marker through the emulated S3 endpoint; the upload's event completes the task, and `up` says so
in one line per task event.

The page's fixed ports (8080, 4566) become free ones: the test reads the URLs `up` prints.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.functional.pages import blocks, running_up

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "writing-agents.md").read_text()
SECTION = PAGE[PAGE.index("## A sensor under `serverless-agents up`") :]


def sensor_module() -> str:
    (module,) = [b for b in blocks(PAGE, "python") if "class SuccessMarkerSensor" in b]
    return module


def test_the_pages_sensor_fires_on_an_upload_against_up(tmp_path: Path) -> None:
    (tmp_path / "my_agents").mkdir()
    (tmp_path / "my_agents" / "markers.py").write_text(sensor_module())
    (manifest,) = [b for b in blocks(SECTION, "toml") if "SuccessMarkerSensor" in b]
    (tmp_path / "markers.toml").write_text(manifest)
    (script,) = blocks(SECTION, "python")
    (command,) = [line for line in SECTION.splitlines() if line.startswith("$ ") and " up " in line]
    flags = shlex.split(command)[2:]  # after `$ .../serverless-agents`
    assert flags[:3] == ["up", "--manifest", "markers.toml"]

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with running_up(tmp_path, flags, env) as up:
        api = up.read_until(r"HTTP API on (http://127\.0\.0\.1:\d+)")[1]
        aws = up.read_until(r"emulated AWS APIs on (http://127\.0\.0\.1:\d+)")[1]
        up.read_until(r"agent markers: sensor, task type 'success_marker'")
        (tmp_path / "fire_marker.py").write_text(
            script.replace("http://127.0.0.1:8080", api).replace("http://127.0.0.1:4566", aws)
        )
        fired = subprocess.run(
            [sys.executable, "fire_marker.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert fired.returncode == 0, fired.stderr[-3000:]
    # `up` said one line per task event, and nothing of the emulator's.
    events = [line.rstrip("\n") for line in up.seen if line.startswith("task ")]
    assert [re.sub(r"^task [\w-]+: ", "", line) for line in events] == [
        "created (agent markers), RUNNING: waiting for the condition",
        "ended SUCCEEDED: the condition is met",
    ]
    assert not [line for line in up.seen if "Traceback" in line or "Exception" in line]
    (expected,) = re.findall(r"^```\n\$ [^\n]* fire_marker\.py\n(.*?)```", SECTION, re.DOTALL | re.MULTILINE)
    assert fired.stdout.splitlines() == expected.splitlines()


def test_task_events_are_one_line_each_with_the_agents_own_error(tmp_path: Path) -> None:
    """An async job whose `get` raises AgentError (examples.JobAgent, raise_on=get): created, running, and
    ended FAILED with the agent's one-line message; nothing of Step Functions' failure event."""
    from serverless_agents.api.client import ApiClient
    from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
    from serverless_agents.local.stack import LocalStack
    from serverless_agents.testing import task_request

    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n'
        "poll = { initial = 0, factor = 1.0, cap = 0 }\n"
    )
    said: list[str] = []
    with LocalStack(manifest) as stack:
        stack.watch_tasks(said.append)
        api = ApiClient(stack.api_url)
        request = task_request("example_job", inputs={}, outputs={}, custom={"raise_on": "get"})
        task_id = task_id_from_resource_meta(api.create_task(request).resource_meta)
        for _ in range(600):
            # A task that ends before the watcher first sees it is "created (agent job) and ended ...".
            if any(line.startswith(f"task {task_id}: ") and " ended " in f"{line} " for line in said):
                break
            threading.Event().wait(0.1)

    assert said[0].startswith(f"task {task_id}: created (agent job)")
    assert said[-1].startswith(f"task {task_id}: ")
    assert said[-1].endswith(
        "ended FAILED: AgentError: the example platform lost track of the job (raise_on=get)"
    )
    assert all("\n" not in line and "Exception" not in line for line in said)


def test_an_aws_port_in_use_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from serverless_agents.cli import main

    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(
            ["up", "--manifest", str(manifest), "--port", "0", "--grpc-port", "0", "--aws-port", str(port)]
        )

    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"serverless-agents: cannot serve the emulated AWS APIs on 127.0.0.1:{port}: ")
    assert "--aws-port" in line


def test_a_bucket_a_sensor_tasks_inputs_name_exists_before_its_first_poke(tmp_path: Path) -> None:
    """flytekit's FileSensor on a bucket no event pattern names: the stack makes it when the task starts,
    so the first poke finds it, and an upload there completes the task (by its schedule: no rule matches)."""
    from serverless_agents import Phase
    from serverless_agents.api.client import ApiClient
    from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
    from serverless_agents.local.stack import LocalStack
    from serverless_agents.testing import task_request

    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.files]\nclass = "serverless_agents.agents.file_sensor:FileSensor"\n')
    custom = {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor"}
    with LocalStack(manifest, schedule_period=0.2) as stack:
        s3 = stack.client("s3")
        assert "fresh-landing" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        api = ApiClient(stack.api_url)
        request = task_request("sensor", {"path": "s3://fresh-landing/in/day.csv"}, {}, custom)
        task_id = task_id_from_resource_meta(api.create_task(request).resource_meta)

        assert "fresh-landing" in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        s3.put_object(Bucket="fresh-landing", Key="in/day.csv", Body=b"id\n1\n")
        for _ in range(600):
            resource = api.get_task(task_id).resource
            if Phase(resource.phase).is_terminal:
                break
            threading.Event().wait(0.1)

    assert (Phase(resource.phase), resource.message) == (Phase.SUCCEEDED, "the condition is met")


def test_a_seconds_rate_points_at_the_local_schedule_period(tmp_path: Path) -> None:
    from serverless_agents.deployment.manifest import parse_manifest
    from serverless_agents.exceptions import ManifestError

    manifest = '[agents.files]\nclass = "serverless_agents.agents.file_sensor:FileSensor"\n'
    with pytest.raises(ManifestError) as refused:
        parse_manifest(manifest + 'schedule = "rate(10 seconds)"\n')
    assert "agents.files.schedule: Value error, 'rate(10 seconds)'" in str(refused.value)
    assert "--schedule-period" in str(refused.value)


@pytest.mark.parametrize("period", ["0", "-1", "soon", "nan"])
def test_schedule_period_must_be_positive_seconds(period: str, capsys: pytest.CaptureFixture[str]) -> None:
    from serverless_agents.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--schedule-period", period])
    assert "--schedule-period" in capsys.readouterr().err
