"""The async agent state machine: `statemachines/async_agent.asl.json`, rendered for one agent.

The file is a template, not JSON: `TimeoutSeconds` must be a number, so its placeholder stands bare. The
CDK app and the local stack both render it here, so what runs locally is what deploys.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from serverless_agents.exceptions import ManifestError

# Inside the package, so that an installed wheel (not only a checkout) can render it: `serverless-agents up`.
DEFINITION_PATH = Path(__file__).resolve().parent / "statemachines" / "async_agent.asl.json"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class AsyncAgentFunctions:
    partition: str
    create_arn: str
    get_arn: str
    delete_arn: str
    execution_timeout_seconds: int

    def substitutions(self) -> dict[str, str]:
        return {
            "Partition": self.partition,
            "CreateFunctionArn": self.create_arn,
            "GetFunctionArn": self.get_arn,
            "DeleteFunctionArn": self.delete_arn,
            "ExecutionTimeoutSeconds": str(self.execution_timeout_seconds),
        }


def definition_template(path: Path = DEFINITION_PATH) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ManifestError(f"cannot read the state machine definition {path}: {e.strerror}") from e


def render_definition(substitutions: dict[str, str], template: str | None = None) -> str:
    """Fill every `${Name}`; a placeholder without a value is an error, not an empty string."""
    text = template if template is not None else definition_template()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - substitutions.keys())
    if missing:
        raise ManifestError(f"state machine definition needs values for {', '.join(missing)}")
    rendered = _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    try:
        json.loads(rendered)  # what we hand to Step Functions must at least be JSON
    except ValueError as e:
        raise ManifestError(f"the rendered state machine definition is not JSON: {e}") from e
    return rendered
