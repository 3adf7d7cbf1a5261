"""Task identity: one task id per Flyte node execution and attempt, valid as a Step Functions execution name.

What propeller guarantees unique per node execution and attempt is the `output_prefix`, not the
`TaskExecutionIdentifier`: the identifier's node id is local to its (sub)workflow
(`NodeExecutionIdentifier.node_id = node.GetID()`, flytepropeller/pkg/controller/nodes/node_exec_context.go),
so a subworkflow called twice, or repeated dynamic children, send the same identifier for different node
executions. The output prefix is `<node data dir>/<retry attempt>` (nodes/task/handler.go, `ioutils.
NewRemoteFileOutputPaths`), and a nested node's data dir lies under its parent's, so it differs wherever the
node execution differs, and is the same when propeller repeats a CreateTask for the same attempt (a call that
timed out). The id hashes both: a repeated create maps to the same task, two node executions never share one.

A readable prefix (execution name, node id, attempt) helps whoever looks at the Step Functions console; the
hash makes it unique.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from flyteidl.core.identifier_pb2 import TaskExecutionIdentifier

# Execution names allow 80 characters, without whitespace and `"#%\^|~`$&,;:/` or brackets.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
# Agent names become parts of Lambda function and state machine names (64 / 80 characters at most).
AGENT_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")


def task_id_from(readable: Sequence[str], attempt: int, key: Sequence[object]) -> str:
    """The id for a task named by `key` (everything that makes it unique, JSON-serializable).

    `readable` (two short names at most) and `attempt` only make the id legible; uniqueness is the hash's.
    Shared by every protocol's identity rule (Flyte 1's and Flyte 2's), so ids look alike whichever sent them.
    """
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:16]
    legible = "-".join(_UNSAFE.sub("_", part)[:24] for part in readable[:2])
    return f"{legible}-a{attempt}-{digest}"


def task_id_for(execution_id: TaskExecutionIdentifier, output_prefix: str) -> str:
    node = execution_id.node_execution_id
    workflow = node.execution_id
    task = execution_id.task_id
    if not (workflow.name and node.node_id):
        raise InvalidRequest(
            "taskExecutionMetadata.taskExecutionId",
            "needs nodeExecutionId.executionId.name and nodeExecutionId.nodeId to identify the task",
        )
    key = [
        workflow.org,
        workflow.project,
        workflow.domain,
        workflow.name,
        node.node_id,
        task.project,
        task.domain,
        task.name,
        task.version,
        execution_id.retry_attempt,
        output_prefix,
    ]
    return task_id_from((workflow.name, node.node_id), execution_id.retry_attempt, key)


def check_task_id(task_id: str, *, field: str = "task_id") -> str:
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidRequest(field, f"{_shown(task_id)} is not a task id (1 to 80 of A-Z a-z 0-9 _ -)")
    return task_id


def check_agent_name(name: str, *, field: str = "agent") -> str:
    if not AGENT_NAME.fullmatch(name):
        raise InvalidRequest(field, f"{_shown(name)} is not an agent name (a-z, then up to 29 of a-z 0-9 -)")
    return name


def _shown(text: str) -> str:
    """A short, printable rendering: ids come from callers, and may be 70 kB or hold control characters."""
    shown = ascii(text[:40])
    return shown if len(text) <= 40 else f"{shown[:-1]}...' ({len(text)} characters)"
