"""The async agent state machine: rendering the template, and the structure the runtime relies on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.deployment.statemachine import (
    ASYNC_AGENT_DEFINITION,
    DEFINITIONS_PACKAGE,
    AsyncAgentFunctions,
    definition_template,
    render_definition,
)
from serverless_agents.exceptions import ManifestError

REPO_DEFINITION = Path(__file__).resolve().parents[2] / "statemachines" / "async_agent.asl.json"
#: What `render_definition` gave at commit cc202e5, before the shared blocks became fragments, for these
#: agents' functions (each file was written by that commit's renderer, called as `written_out` is here).
RENDERED_BEFORE_FRAGMENTS = Path(__file__).resolve().parent / "definitions"
FUNCTIONS = AsyncAgentFunctions(
    partition="aws",
    create_arn="arn:aws:lambda:us-east-1:123456789012:function:sa-job-create",
    get_arn="arn:aws:lambda:us-east-1:123456789012:function:sa-job-get",
    delete_arn="arn:aws:lambda:us-east-1:123456789012:function:sa-job-delete",
    execution_timeout_seconds=3600,
)
SERVICE_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return dict(json.loads(render_definition(FUNCTIONS.substitutions())))


@pytest.fixture(scope="module")
def states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(definition["States"])


def test_the_template_is_the_repository_file() -> None:
    # The editable install reads the top-level folder itself, not a copy (the wheel: test_wheel.py).
    assert Path(str(files(DEFINITIONS_PACKAGE) / ASYNC_AGENT_DEFINITION)) == REPO_DEFINITION
    assert definition_template() == REPO_DEFINITION.read_text()


def written_out(agent: str, *, listens: bool) -> AsyncAgentFunctions:
    return AsyncAgentFunctions(
        partition="aws",
        create_arn=f"arn:aws:lambda:us-east-1:123456789012:function:sa-{agent}-create:live",
        get_arn=f"arn:aws:lambda:us-east-1:123456789012:function:sa-{agent}-get:live",
        delete_arn=f"arn:aws:lambda:us-east-1:123456789012:function:sa-{agent}-delete:live",
        execution_timeout_seconds=3600 if listens else 86400,
        listens=listens,
    )


@pytest.mark.parametrize(("agent", "listens"), [("polling", False), ("listening", True)])
def test_fragments_render_the_definition_that_wrote_each_block_out(agent: str, listens: bool) -> None:
    rendered = render_definition(written_out(agent, listens=listens).substitutions())
    before = (RENDERED_BEFORE_FRAGMENTS / f"{agent}.asl.json").read_text()

    assert json.loads(rendered) == json.loads(before)


def test_the_rendered_definition_is_plain_asl(definition: dict[str, Any]) -> None:
    fragments = json.loads(definition_template().replace("${ExecutionTimeoutSeconds}", "1"))["Fragments"]
    rendered = json.dumps(definition)

    assert "Fragments" not in definition
    assert '"$ref"' not in rendered
    # Each shared block is written once in the file, and the states that share it carry it whole.
    assert definition_template().count('"ErrorEquals": ["Lambda.TooManyRequestsException"]') == 1
    states = definition["States"]
    assert [states[s]["Retry"] for s in ("Create", "Get", "Cleanup")] == [fragments["LambdaRetry"]] * 3
    assert [states[s]["ResultSelector"] for s in ("Create", "Get")] == [fragments["StepResult"]] * 2


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ({"$ref": "#/Fragments/Nothing"}, "names one of its fragments, #/Fragments/{Shared}"),
        ({"$ref": "#/States/Wait"}, "names one of its fragments"),
        ({"$ref": "#/Fragments/Shared", "MaxAttempts": 2}, "a reference stands alone"),
    ],
)
def test_a_reference_to_no_fragment_is_a_manifest_error(reference: dict[str, Any], problem: str) -> None:
    template = json.dumps({"Fragments": {"Comment": "why", "Shared": [1]}, "Retry": reference})

    with pytest.raises(ManifestError, match=re.escape(problem)):
        render_definition({}, template)


def test_fragments_may_use_fragments_but_not_themselves() -> None:
    nested = {"Fragments": {"Out": [{"$ref": "#/Fragments/In"}], "In": 2}, "x": {"$ref": "#/Fragments/Out"}}
    looped = {"Fragments": {"Loop": [{"$ref": "#/Fragments/Loop"}]}, "x": {"$ref": "#/Fragments/Loop"}}

    assert json.loads(render_definition({}, json.dumps(nested))) == {"x": [2]}
    with pytest.raises(ManifestError, match="fragment Loop refers to itself"):
        render_definition({}, json.dumps(looped))


def test_render_fills_every_placeholder(
    definition: dict[str, Any], states: dict[str, dict[str, Any]]
) -> None:
    rendered = render_definition(FUNCTIONS.substitutions())

    assert "${" not in rendered.replace("${...}", "")  # the Comment mentions the syntax
    assert definition["TimeoutSeconds"] == 3600
    functions = {name: states[name]["Parameters"]["FunctionName"] for name in ("Create", "Get", "Cleanup")}
    assert functions == {
        "Create": FUNCTIONS.create_arn,
        "Get": FUNCTIONS.get_arn,
        "Cleanup": FUNCTIONS.delete_arn,
    }
    assert {states[name]["Resource"] for name in functions} == {"arn:aws:states:::lambda:invoke"}


def test_a_missing_substitution_is_a_manifest_error_naming_it() -> None:
    substitutions = FUNCTIONS.substitutions()
    del substitutions["GetFunctionArn"]
    del substitutions["Partition"]

    with pytest.raises(ManifestError, match="needs values for GetFunctionArn, Partition"):
        render_definition(substitutions)


def test_render_accepts_another_template() -> None:
    rendered = render_definition({"Seconds": "7", "Name": "x"}, '{"a": ${Seconds}, "b": "${Name}"}')

    assert json.loads(rendered) == {"a": 7, "b": "x"}


def test_an_unreadable_template_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the state machine definition"):
        definition_template(tmp_path / "missing.asl.json")


def test_without_the_install_the_definitions_are_missing_by_name() -> None:
    # src/ alone on the path, no site-packages (so no editable install's finder): no statemachines/ there.
    script = (
        "from serverless_agents.deployment.statemachine import definition_template\n"
        "try: definition_template()\n"
        "except Exception as e: print(type(e).__name__, e)"
    )
    src = REPO_DEFINITION.parents[1] / "src"
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        env={"PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == (
        "ManifestError cannot find the state machine definitions: no package serverless_agents.statemachines "
        "(install the project: `pip install -e .` maps it to statemachines/)"
    )


def test_the_loop_starts_at_create_and_waits_as_get_says(
    definition: dict[str, Any], states: dict[str, dict[str, Any]]
) -> None:
    # A new task creates its job; a successor in the chain (its input carries the job) polls on.
    assert definition["StartAt"] == "Started?"
    assert states["Started?"]["Default"] == "Create"
    assert states["Started?"]["Choices"] == [{"Variable": "$.job", "IsPresent": True, "Next": "Wait"}]
    assert states["Wait"]["SecondsPath"] == "$.job.wait_seconds"
    assert states["Wait"]["Next"] == "Get"
    running = [choice for choice in states["Ended?"]["Choices"] if choice.get("BooleanEquals") is False]
    assert [(c["Variable"], c["Next"]) for c in running] == [("$.job.done", "Wait")]


def test_every_transition_names_an_existing_state(states: dict[str, dict[str, Any]]) -> None:
    targets = {state["Next"] for state in states.values() if "Next" in state}
    targets |= {catcher["Next"] for state in states.values() for catcher in state.get("Catch", [])}
    targets |= {choice["Next"] for state in states.values() for choice in state.get("Choices", [])}
    targets |= {state["Default"] for state in states.values() if "Default" in state}

    assert targets <= states.keys()


def test_every_task_retries_throttling_apart_from_service_errors(states: dict[str, dict[str, Any]]) -> None:
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert set(tasks) == {"Create", "Get", "Cleanup", "Continue"}
    del tasks["Continue"]  # not a Lambda: see the next test
    for name, state in tasks.items():
        errors = [set(retrier["ErrorEquals"]) for retrier in state["Retry"]]
        throttling = [e for e in errors if "Lambda.TooManyRequestsException" in e]
        service = [e for e in errors if e >= SERVICE_ERRORS or e == {"States.ALL"}]
        assert throttling == [{"Lambda.TooManyRequestsException"}], name
        assert len(service) == 1, name
        # ASL: States.ALL must stand alone, in the last retrier.
        assert all("States.ALL" not in e or (e == {"States.ALL"} and e is errors[-1]) for e in errors), name


def test_continue_starts_this_state_machine_with_the_state_and_ends_the_execution_succeeded(
    states: dict[str, dict[str, Any]],
) -> None:
    continuing = [c for c in states["Ended?"]["Choices"] if c.get("Variable") == "$.job.continues"]
    assert continuing == [{"Variable": "$.job.continues", "BooleanEquals": True, "Next": "Continue"}]
    assert states["Ended?"]["Choices"][0] == continuing[0]  # before "running: wait"
    step = states["Continue"]
    assert step["Resource"] == "arn:aws:states:::states:startExecution"
    assert step["Parameters"] == {
        "StateMachineArn.$": "$$.StateMachine.Id",
        "Name.$": "$.job.successor",
        "Input.$": "$",
    }
    # A retry whose first attempt started the successor: the chain goes on; any other failure cleans up.
    assert [(c["ErrorEquals"], c["Next"]) for c in step["Catch"]] == [
        (["StepFunctions.ExecutionAlreadyExistsException"], "Continued"),
        (["States.ALL"], "Cleanup"),
    ]
    assert step["Next"] == "Continued"
    assert states["Continued"]["Type"] == "Succeed"


def test_create_and_get_select_every_field_of_the_step_result(states: dict[str, dict[str, Any]]) -> None:
    from serverless_agents.runtime.async_steps import StepResult

    for name in ("Create", "Get"):
        assert set(states[name]["ResultSelector"]) == {f"{key}.$" for key in StepResult.__annotations__}


@pytest.mark.parametrize("name", ["Create", "Get"])
def test_create_and_get_failures_go_to_cleanup(states: dict[str, dict[str, Any]], name: str) -> None:
    assert [(c["ErrorEquals"], c["Next"]) for c in states[name]["Catch"]] == [(["States.ALL"], "Cleanup")]
    assert states[name]["Catch"][0]["ResultPath"] == "$.error"


def test_cleanup_ends_in_a_fail_state(states: dict[str, dict[str, Any]]) -> None:
    assert states[states["Cleanup"]["Next"]]["Type"] == "Fail"
    assert states["Cleanup"]["ResultPath"] is None  # keeps $.error for the Fail state's cause
    # A delete that keeps failing still ends the execution, with the error that made it clean up.
    (catch,) = states["Cleanup"]["Catch"]
    assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], states["Cleanup"]["Next"])
    assert catch["ResultPath"] == "$.cleanup_error"


def test_the_timeout_is_the_substituted_number() -> None:
    substitutions = {**FUNCTIONS.substitutions(), "ExecutionTimeoutSeconds": "86400"}

    assert json.loads(render_definition(substitutions))["TimeoutSeconds"] == 86_400


def test_no_state_uses_jsonata(definition: dict[str, Any], states: dict[str, dict[str, Any]]) -> None:
    languages = {definition.get("QueryLanguage", "JSONPath")}
    languages |= {state.get("QueryLanguage", "JSONPath") for state in states.values()}

    assert languages == {"JSONPath"}
