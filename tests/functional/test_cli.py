"""`serverless-agents up --demo`: the README's first command, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_agents.cli import main
from serverless_agents.manifest import EXAMPLE_MANIFEST

pytestmark = pytest.mark.functional


def test_up_runs_the_demo_on_the_example_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./agents.toml: the package's example manifest
    code = main(
        [
            "up",
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
    assert f"manifest: {EXAMPLE_MANIFEST}" in out
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


def test_up_runs_the_agents_toml_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agents.toml").write_text('[agents.Here]\nclass = "x:Y"\n')
    monkeypatch.chdir(tmp_path)

    assert main(["up", "--port", "0", "--grpc-port", "0", "--aws-port", "0"]) == 2
    captured = capsys.readouterr()
    assert "manifest: agents.toml" in captured.out
    assert "Here" in captured.err


def test_adapter_refuses_to_start_without_keys_to_sign_resource_meta(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SA_RESOURCE_META_KEYS", raising=False)

    assert main(["adapter", "--api", "http://127.0.0.1:9", "--port", "0", "--metrics-port", "0"]) == 2
    assert "SA_RESOURCE_META_KEYS is not set" in capsys.readouterr().err


def test_adapter_takes_tls_files_in_pairs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SA_RESOURCE_META_KEYS", "k" * 32)

    assert main(["adapter", "--api", "http://127.0.0.1:9", "--port", "0", "--tls-cert", "cert.pem"]) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
