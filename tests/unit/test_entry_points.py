"""Lambda's handler strings and the library's handlers: `functions/<role>/handler.py` (what Lambda imports,
copied into each bundle) re-exports exactly what `serverless_agents.handlers.entry_point` resolves the same
handler string to (what the local stack runs, with the wheel installed), so the two can never differ."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import serverless_agents.handlers as handlers
from serverless_agents.deployment.naming import FunctionRole
from serverless_agents.handlers import ROLES, UnknownHandler, entry_point, handler_string

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ROOT / "functions"
#: The handlers' shared modules, which are no function's entry point.
SHARED = {"__init__", "observability", "snapstart"}


def test_every_role_has_an_entry_point_folder_and_a_library_module() -> None:
    folders = {p.parent.name for p in ENTRY_POINTS.glob("*/handler.py")}
    modules = {p.stem for p in Path(handlers.__file__).parent.glob("*.py")} - SHARED

    assert folders == set(ROLES)
    assert modules == set(ROLES)
    assert set(get_args(FunctionRole)) <= set(ROLES)  # an agent's functions, named by naming.py


@pytest.mark.parametrize("role", ROLES)
def test_the_entry_point_reexports_what_the_handler_string_resolves_to(role: str) -> None:
    deployed = handler_string(role)
    module, attribute = entry_point(deployed)
    lambda_module, _, lambda_attribute = deployed.rpartition(".")  # as Lambda's runtime splits it

    resolved = getattr(importlib.import_module(module), attribute)
    assert getattr(importlib.import_module(lambda_module), lambda_attribute) is resolved
    assert resolved.__module__ == module  # the code is in the library, not in functions/


@pytest.mark.parametrize("role", ROLES)
def test_the_entry_point_is_a_docstring_and_one_import(role: str) -> None:
    tree = ast.parse((ENTRY_POINTS / role / "handler.py").read_text())
    docstring, *code = tree.body

    assert isinstance(docstring, ast.Expr)
    assert isinstance(docstring.value, ast.Constant)
    assert isinstance(docstring.value.value, str)
    assert [ast.unparse(node) for node in code] == [
        f"from serverless_agents.handlers.{role} import handler as handler"
    ]


@pytest.mark.parametrize(
    ("candidate", "named"),
    [
        ("app.handler", "expected functions.<role>.handler.handler"),
        ("functions.create.handler.main", "expected functions.<role>.handler.handler"),
        ("functions.create.handler", "expected functions.<role>.handler.handler"),
        ("functions.create.handler.handler.extra", "expected functions.<role>.handler.handler"),
        ("serverless_agents.handlers.create.handler", "expected functions.<role>.handler.handler"),
        ("functions.observability.handler.handler", "roles: api, create, delete, finalize"),
        ("functions.__init__.handler.handler", "roles: api, create"),
        ("functions..handler.handler", "names no function of this project"),
        ("functions.Create.handler.handler", "names no function of this project"),
        ("", "expected functions.<role>.handler.handler"),
    ],
)
def test_any_other_handler_string_is_refused_by_name(candidate: str, named: str) -> None:
    with pytest.raises(UnknownHandler) as refused:
        entry_point(candidate)

    assert repr(candidate) in str(refused.value)
    assert named in str(refused.value)
    assert "\n" not in str(refused.value)


VALID = {handler_string(role) for role in ROLES}
#: Near misses: the valid strings' own parts, in any order and number.
NEAR_MISSES = st.lists(st.sampled_from(["functions", "handler", "", " ", *ROLES]), max_size=6).map(".".join)


def test_a_handler_string_is_made_for_roles_only() -> None:
    assert handler_string("create") == "functions.create.handler.handler"
    with pytest.raises(UnknownHandler, match="no function role 'observability'"):
        handler_string("observability")


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.one_of(st.text(max_size=60), NEAR_MISSES, st.sampled_from(sorted(VALID))))
def test_only_the_projects_handler_strings_resolve(candidate: str) -> None:
    try:
        module, attribute = entry_point(candidate)
    except UnknownHandler:
        assert candidate not in VALID
    else:
        assert candidate in VALID
        role = candidate.split(".")[1]
        assert (module, attribute) == (f"serverless_agents.handlers.{role}", "handler")
