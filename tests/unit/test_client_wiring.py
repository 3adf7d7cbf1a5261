"""AWS clients are made in one place: the runtime's objects take theirs as typed parameters and never make
one; `runtime/wiring.py` (the composition root) and `aws.py` (the lazy, cached factory) do.

A module that makes its own client cannot run against the client a test or the local stack hands in, and
its cold start pays for a service model it may not need. The check reads the source (ast), so it holds for
paths no test reaches.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "serverless_agents"
#: Where clients are made: the composition root, and the factory it calls.
MAKERS = {SRC / "runtime" / "wiring.py", SRC / "aws" / "__init__.py"}
CHECKED = sorted(
    {*(SRC / "runtime").glob("*.py"), SRC / "aws" / "tasks_table.py", SRC / "aws" / "payloads.py"} - MAKERS
)
#: The calls that make a client, as `<module>.<function>` or a bare name imported from those modules.
_FACTORIES = {"aws": {"client"}, "boto3": {"client", "resource", "Session"}}
_FACTORY_MODULES = {"serverless_agents.aws": "aws", "boto3": "boto3", "boto3.session": "boto3"}


def clients_made(source: str) -> list[str]:
    """Every place `source` makes an AWS client, as `line: call`."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}  # local name -> factory module, for `from boto3 import client`
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in _FACTORY_MODULES:
            module = _FACTORY_MODULES[node.module]
            for alias in node.names:
                if alias.name in _FACTORIES[module]:
                    imported[alias.asname or alias.name] = module
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        made = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.attr in _FACTORIES.get(func.value.id, ())
        ) or (isinstance(func, ast.Name) and func.id in imported)
        if made:
            found.append((node.lineno, f"{node.lineno}: {ast.unparse(func)}(...)"))
    return [call for _, call in sorted(found)]


def untyped_clients(source: str) -> list[str]:
    """Every parameter or field named `*client` that is not a required boto3-stubs client (`...Client`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            defaults = {
                a.arg
                for a, d in [
                    *zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True),
                    *zip(args.kwonlyargs, args.kw_defaults, strict=True),
                ]
                if d is not None
            }
            for arg in [*positional, *args.kwonlyargs]:
                if arg.arg.endswith("client"):
                    typed = arg.annotation is not None and ast.unparse(arg.annotation).endswith("Client")
                    if not typed or arg.arg in defaults:
                        found.append(f"{node.lineno}: {node.name}({arg.arg})")
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id.endswith("client")
            and not ast.unparse(node.annotation).endswith("Client")
        ):
            found.append(f"{node.lineno}: {node.target.id}")
    return found


@pytest.mark.parametrize("module", CHECKED, ids=lambda p: str(p.relative_to(SRC)))
def test_no_runtime_module_makes_a_client(module: Path) -> None:
    assert clients_made(module.read_text()) == []


@pytest.mark.parametrize("module", CHECKED, ids=lambda p: str(p.relative_to(SRC)))
def test_every_client_parameter_is_a_required_typed_client(module: Path) -> None:
    assert untyped_clients(module.read_text()) == []


def test_the_checks_see_every_way_of_making_or_defaulting_a_client() -> None:
    source = """
import boto3
from serverless_agents import aws
from serverless_agents.aws import client as make
from boto3 import resource

class Table:
    def __init__(self, name: str, client: Any = None, *, lambda_client: LambdaClient | None = None) -> None:
        self._client = client or aws.client("dynamodb")
        self._s3 = boto3.client("s3")
        self._sfn = make("stepfunctions")
        self._db = resource("dynamodb")
        self._session = boto3.Session()

class Registration:
    scheduler_client: Any

def fine(sfn_client: SFNClient, *, lambda_client: LambdaClient) -> None:
    sfn_client.start_execution(stateMachineArn="arn")
"""
    assert clients_made(source) == [
        "9: aws.client(...)",
        "10: boto3.client(...)",
        "11: make(...)",
        "12: resource(...)",
        "13: boto3.Session(...)",
    ]
    assert untyped_clients(source) == [
        "8: __init__(client)",
        "8: __init__(lambda_client)",
        "16: scheduler_client",
    ]


def test_the_composition_root_makes_every_client_the_runtime_takes() -> None:
    assert all(maker.is_file() for maker in MAKERS)  # renamed, it would leave no module unchecked
    wiring = (SRC / "runtime" / "wiring.py").read_text()
    assert [call.split(": ")[1] for call in clients_made(wiring)] == ["aws.client(...)"] * 7
