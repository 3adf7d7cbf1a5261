"""What the container runs: its image and resources, its command with propeller's placeholders filled in, and
its environment."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from serverless_agents.exceptions import AgentError

if TYPE_CHECKING:
    from flyteidl.core.literals_pb2 import Literal, LiteralMap
    from flyteidl.core.tasks_pb2 import Resources

    from serverless_agents.agent import TaskContext

# Propeller's template syntax (flyteplugins `pluginmachinery/utils/template`): case-insensitive, `.` or `$`.
_PLACEHOLDER = re.compile(r"\{\{\s*[.$](\w+)(?:\.([^}\s]+))?\s*\}\}")
_TASK_TEMPLATE_PATH = re.compile(r"(?i)\{\{\s*[.$]TaskTemplatePath\s*\}\}")


def placeholder_values(task_id: str, output_prefix: str, raw_output_prefix: str | None) -> dict[str, str]:
    """Values for propeller's placeholders, keyed by lower-case name, laid out as flytekit's connector
    executor lays them out: everything under `output_prefix`, inputs as `inputs.pb` beside `outputs.pb`."""
    unique = re.sub(r"[^a-zA-Z0-9_]+", "_", re.sub(r"^[^a-zA-Z_]+", "a", task_id))
    raw = f"{raw_output_prefix.rstrip('/')}/{task_id}" if raw_output_prefix else f"{output_prefix}/raw_output"
    return {
        "input": f"{output_prefix}/inputs.pb",
        "inputprefix": output_prefix,
        "outputprefix": output_prefix,
        "rawoutputdataprefix": raw,
        "checkpointoutputprefix": f"{output_prefix}/checkpoint_output",
        # Each attempt is a new task with its own output_prefix; the previous attempt's is not known here, so
        # every attempt starts without a checkpoint, as propeller's first attempt does.
        "prevcheckpointprefix": '""',
        "perretryuniquekey": unique,
        "tasktemplatepath": f"{output_prefix}/task.pb",
    }


def render_args(args: Sequence[str], values: Mapping[str, str], literals: LiteralMap) -> list[str]:
    """Substitute `{{.input}}`, `{{.outputPrefix}}`, ... and `{{.inputs.<name>}}`; unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        name, sub = match.group(1).lower(), match.group(2)
        if name == "inputs" and sub is not None:
            if sub not in literals.literals:
                raise AgentError(f"container args: {match.group(0)} names no input of the task")
            return _literal_text(literals.literals[sub], match.group(0))
        return values.get(name, match.group(0)) if sub is None else match.group(0)

    return [_PLACEHOLDER.sub(replace, arg) for arg in args]


def reads_task_template(args: Sequence[str]) -> bool:
    """Whether the command asks for `{{.TaskTemplatePath}}`, so the template must be written there."""
    return any(_TASK_TEMPLATE_PATH.search(arg) for arg in args)


def _literal_text(literal: Literal, placeholder: str) -> str:
    """An input as propeller writes it into args: primitives as text, blobs by URI, lists as `[a,b]`."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return "[" + ",".join(_literal_text(item, placeholder) for item in literal.collection.literals) + "]"
    scalar = literal.scalar
    scalar_kind = scalar.WhichOneof("value") if kind == "scalar" else None
    if scalar_kind == "primitive":
        primitive = scalar.primitive
        value_kind = primitive.WhichOneof("value")
        if value_kind == "boolean":
            return "true" if primitive.boolean else "false"
        if value_kind == "float_value":
            text = repr(primitive.float_value)
            return text.removesuffix(".0")
        if value_kind in ("datetime", "duration"):
            return str(getattr(primitive, value_kind).ToJsonString())
        if value_kind in ("integer", "string_value"):
            return str(getattr(primitive, value_kind))
    if scalar_kind == "blob":
        return str(scalar.blob.uri)
    if scalar_kind == "structured_dataset":
        return str(scalar.structured_dataset.uri)
    raise AgentError(
        f"container args: {placeholder} is a {scalar_kind or kind} input, which has no text form"
    )


def environment(task: TaskContext) -> list[dict[str, str]]:
    """What pyflyte-execute reads from its pod's environment, then Flyte's and the container's own."""
    env: dict[str, str] = {}
    metadata = task.execution_metadata
    if metadata is not None:
        ident = metadata.task_execution_id
        workflow = ident.node_execution_id.execution_id
        env = {
            "FLYTE_INTERNAL_EXECUTION_PROJECT": workflow.project,
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": workflow.domain,
            "FLYTE_INTERNAL_EXECUTION_ID": workflow.name,
            "FLYTE_INTERNAL_TASK_PROJECT": ident.task_id.project,
            "FLYTE_INTERNAL_TASK_DOMAIN": ident.task_id.domain,
            "FLYTE_INTERNAL_TASK_NAME": ident.task_id.name,
            "FLYTE_INTERNAL_TASK_VERSION": ident.task_id.version,
            "FLYTE_ATTEMPT_NUMBER": str(ident.retry_attempt),
        }
        env.update(metadata.environment_variables)
    env.update({pair.key: pair.value for pair in task.template.container.env})
    # pyflyte-execute exits 0 after writing error.pb unless told otherwise: let the exit code tell the truth.
    env["FLYTE_FAIL_ON_ERROR"] = "true"
    return [{"name": name, "value": value} for name, value in env.items() if value]


def image_and_resources(task: TaskContext) -> tuple[str, Resources]:
    """The template's, unless the workflow overrides them for this node (`with_overrides`)."""
    container = task.template.container
    image, resources = container.image, container.resources
    metadata = task.execution_metadata
    if metadata is not None and metadata.HasField("overrides"):
        overrides = metadata.overrides
        if overrides.container_image:
            image = overrides.container_image
        if overrides.HasField("resources") and (overrides.resources.requests or overrides.resources.limits):
            resources = overrides.resources
    return image, resources
