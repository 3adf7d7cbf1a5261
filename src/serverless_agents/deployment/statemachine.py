"""The async agent state machine: `statemachines/async_agent.asl.json`, rendered for one agent.

The definition's source is the repository's top-level `statemachines/` folder, which setup.py maps to the
package `serverless_agents.statemachines`: the wheel carries it inside the package, the editable install
finds it in the folder, and either way it is read here through `importlib.resources`. `agent_definition` is
the one place an agent's definition is made: the CDK app passes its functions' ARNs as CloudFormation
tokens, the local stack passes moto's, so what runs locally is what deploys.

The file is a template, not ASL, in three ways, each undone by `render_definition`:
- `${Name}` placeholders take per-agent values (`AsyncAgentFunctions.substitutions`); `TimeoutSeconds`
  must be a number, so its placeholder stands bare, and the file is JSON only once they are filled.
- `Fragments` holds blocks several states share, written once (the Lambda states' `Retry`, the
  `ResultSelector` of Create and Get); a state's `{"$ref": "#/Fragments/<name>"}` stands for one. Rendering
  puts each fragment in place of its reference and drops `Fragments`, which Step Functions would refuse.
- It holds both waits, `Listen` (events end it: an agent declaring events) and the plain `Wait` (the
  fallback of `Listen`, and the only wait of an agent declaring none); `${WaitState}` names the one the loop
  enters, and rendering drops a state nothing reaches, which Step Functions would also refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

from serverless_agents.exceptions import ManifestError

if TYPE_CHECKING:
    from serverless_agents.deployment.naming import FunctionRole
    from serverless_agents.deployment.plan import PlannedAgent

#: The package the definitions ship in (the repository's `statemachines/`, mapped there by setup.py).
DEFINITIONS_PACKAGE = "serverless_agents.statemachines"
ASYNC_AGENT_DEFINITION = "async_agent.asl.json"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_FRAGMENTS = "Fragments"
_REFERENCE = "$ref"
_FRAGMENT_POINTER = f"#/{_FRAGMENTS}/"


@dataclass(frozen=True)
class AsyncAgentFunctions:
    partition: str
    create_arn: str
    get_arn: str
    delete_arn: str
    execution_timeout_seconds: int
    #: The agent declares events (`serverless_agents.deployment.job_events`): its loop waits in Listen.
    listens: bool = False

    def substitutions(self) -> dict[str, str]:
        return {
            "Partition": self.partition,
            "CreateFunctionArn": self.create_arn,
            "GetFunctionArn": self.get_arn,
            "DeleteFunctionArn": self.delete_arn,
            "ExecutionTimeoutSeconds": str(self.execution_timeout_seconds),
            "WaitState": "Listen" if self.listens else "Wait",
        }


def agent_definition(agent: PlannedAgent, partition: str, invocable_arns: Mapping[FunctionRole, str]) -> str:
    """The definition of `agent`'s state machine, invoking its create, get and delete functions at
    `invocable_arns` (by role: what callers invoke, a SnapStart function's alias)."""
    return render_definition(
        AsyncAgentFunctions(
            partition=partition,
            create_arn=invocable_arns["create"],
            get_arn=invocable_arns["get"],
            delete_arn=invocable_arns["delete"],
            execution_timeout_seconds=agent.settings.execution_timeout,
            listens=agent.listens,
        ).substitutions()
    )


def definition_template(source: Traversable | None = None) -> str:
    """The template's text: the async agent definition unless told another `source`."""
    try:
        source = source or files(DEFINITIONS_PACKAGE) / ASYNC_AGENT_DEFINITION
    except ModuleNotFoundError as e:  # src/ on the path, or an install from before setup.py mapped the folder
        raise ManifestError(
            f"cannot find the state machine definitions: no package {e.name} (install the project: "
            "`pip install -e .` maps it to statemachines/)"
        ) from e
    try:
        return source.read_text()
    except OSError as e:
        raise ManifestError(f"cannot read the state machine definition {source}: {e.strerror}") from e


def render_definition(substitutions: dict[str, str], template: str | None = None) -> str:
    """Fill every `${Name}`, expand every fragment, drop the states nothing reaches: plain ASL.

    A placeholder without a value is an error, not an empty string; so is a reference to no fragment."""
    text = template if template is not None else definition_template()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - substitutions.keys())
    if missing:
        raise ManifestError(f"state machine definition needs values for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    try:
        template_json = json.loads(rendered)  # what we hand to Step Functions must at least be JSON
    except ValueError as e:
        raise ManifestError(f"the rendered state machine definition is not JSON: {e}") from e
    fragments = template_json.pop(_FRAGMENTS, {})
    definition: dict[str, Any] = _expand(template_json, fragments, ())
    states = definition.get("States", {})
    for name in states.keys() - _reachable(definition):
        del states[name]
    return json.dumps(definition, indent=2)


def _expand(node: Any, fragments: Mapping[str, Any], within: tuple[str, ...]) -> Any:
    """`node` with each `{"$ref": "#/Fragments/<name>"}` replaced by that fragment, itself expanded."""
    if isinstance(node, list):
        return [_expand(item, fragments, within) for item in node]
    if not isinstance(node, dict):
        return node
    if _REFERENCE not in node:
        return {key: _expand(value, fragments, within) for key, value in node.items()}
    pointer = node[_REFERENCE]
    name = pointer.removeprefix(_FRAGMENT_POINTER) if isinstance(pointer, str) else None
    if len(node) != 1 or name is None or name == pointer or name not in fragments:
        names = ", ".join(sorted(fragments.keys() - {"Comment"}))
        raise ManifestError(
            f"the state machine definition refers to {json.dumps(node)}: a reference stands alone and names "
            f"one of its fragments, {_FRAGMENT_POINTER}{{{names}}}"
        )
    if name in within:
        raise ManifestError(f"the state machine definition's fragment {name} refers to itself")
    return _expand(fragments[name], fragments, (*within, name))


def _reachable(definition: dict[str, Any]) -> set[str]:
    """The states a run can enter, from StartAt through every Next, Default, Choice and Catch."""
    states: dict[str, Any] = definition.get("States", {})
    seen: set[str] = set()
    todo = [definition.get("StartAt")]
    while todo:
        name = todo.pop()
        if not isinstance(name, str) or name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        todo += [state.get("Next"), state.get("Default")]
        todo += [branch.get("Next") for branch in (*state.get("Choices", ()), *state.get("Catch", ()))]
    return seen
