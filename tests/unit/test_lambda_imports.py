"""What `functions/` imports decides cold start: no emulator, CDK, gRPC, flytekit or test code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
FORBIDDEN = ("moto", "aws_cdk", "grpc", "flytekit", "tests", "docker", "serverless_agents.local")


def test_every_role_has_a_handler() -> None:
    assert HANDLERS == ["api", "create", "delete", "finalize", "get", "poke", "sweeper", "sync"]


@pytest.mark.parametrize("role", HANDLERS)
def test_handler_imports_stay_lean(role: str) -> None:
    # A fresh interpreter: what this test process imported must not hide what the handler pulls in.
    script = (
        "import json, sys, importlib; "
        f"importlib.import_module('functions.{role}.handler'); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
    )

    leaked = sorted({m for m in modules for f in FORBIDDEN if m == f or m.startswith(f + ".")})
    assert leaked == [], f"functions.{role}.handler imports {leaked}"
