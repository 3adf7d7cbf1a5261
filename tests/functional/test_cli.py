"""`serverless-agents up --demo`: the README's first command, end to end."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from serverless_agents.cli import _manifest, build_parser, main
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST

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


def test_up_demo_runs_the_example_agents_beside_a_local_agents_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Seen: `up --demo` in a folder with its own agents.toml crashed with a traceback (NOT_FOUND for
    # example_job): the demo calls the example agents, so it runs them.
    (tmp_path / "agents.toml").write_text('[agents.mine]\nclass = "serverless_agents.examples:EchoAgent"\n')
    monkeypatch.chdir(tmp_path)

    assert _manifest(None, demo=True) == EXAMPLE_MANIFEST
    assert "./agents.toml is not used" in capsys.readouterr().out
    assert _manifest(None) == Path("agents.toml")


def test_up_demo_on_a_manifest_without_the_example_agents_says_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.mine]\nclass = "serverless_agents.examples:EchoAgent"\n')
    ports = ["--port", "0", "--grpc-port", "0", "--aws-port", "0"]

    assert main(["up", "--manifest", str(manifest), *ports, "--demo", "--exit-after-demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert "'example_job'" in err
    assert "without --manifest" in err


@pytest.mark.parametrize(
    ("flag", "server"),
    [
        ("--port", "the HTTP API"),
        ("--grpc-port", "the gRPC adapter"),
        ("--aws-port", "the emulated AWS APIs"),
    ],
)
def test_up_names_the_port_in_use_and_the_flag_that_picks_another(
    flag: str, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": "0", "--grpc-port": "0", "--aws-port": "0"} | {flag: str(port)}

        assert main(["up", *(part for pair in ports.items() for part in pair)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot serve {server} on 127.0.0.1:{port}" in err
    assert flag in err


@pytest.mark.parametrize("command", ["up", "adapter"])
def test_help_gives_every_option_a_line(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    text = capsys.readouterr().out
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        assert action.help, action.option_strings
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(text.split()), action.option_strings


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
