"""`serverless-agents up --demo`: the README's first command, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_agents.cli import main

pytestmark = pytest.mark.functional

ROOT = Path(__file__).parents[2]


def test_up_runs_the_demo_on_the_example_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "up",
            "--manifest",
            str(ROOT / "agents.toml"),
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--aws-port",
            "0",
            "--demo",
            "--exit-after-demo",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "HTTP API on http://127.0.0.1:" in out
    assert "gRPC adapter on 127.0.0.1:" in out
    assert "ListAgents: job (example_job, async), echo (example_echo, sync)" in out
    assert "SUCCEEDED: done" in out
    assert '"greeting": "hello from Flyte"' in out
    assert 'SUCCEEDED: {"text": "ping"}' in out
    assert "ABORTED" in out
    assert "SUCCEEDED: the condition is met" in out  # the FileSensor, completed by the upload's event
    assert "demo finished" in out


def test_up_reports_a_bad_manifest_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.Bad_Name]\nclass = "x:Y"\n')

    assert (
        main(["up", "--manifest", str(manifest), "--port", "0", "--grpc-port", "0", "--aws-port", "0"]) == 2
    )
    assert "Bad_Name" in capsys.readouterr().err
