"""Task identity: one task id per Flyte node execution and attempt, valid as a Step Functions execution name.

What propeller guarantees unique per node execution and attempt is the `output_prefix`, not the
`TaskExecutionIdentifier`: the identifier's node id is local to its (sub)workflow
(`NodeExecutionIdentifier.node_id = node.GetID()`, flytepropeller/pkg/controller/nodes/node_exec_context.go),
so a subworkflow called twice, or repeated dynamic children, send the same identifier for different node
executions. The output prefix is `<node data dir>/<retry attempt>` (nodes/task/handler.go, `ioutils.
NewRemoteFileOutputPaths`), and a nested node's data dir lies under its parent's, so it differs wherever the
node execution differs, and is the same when propeller repeats a CreateTask for the same attempt (a call that
timed out). The id hashes both: a repeated create maps to the same task, two node executions never share one.

A readable part (execution name, node id, attempt) helps whoever looks at the Step Functions console; the
hash makes it unique.

Every id starts with its agent's name and `AGENT_SEPARATOR` (`job_f6a2b9c-n0-a0-<hash>`), a character agent
names cannot contain, so `agent_key_prefix(agent)` starts the ids of that agent's tasks and of no other
agent's (`etl_` is not a prefix of `etl-nightly_...`). That is what lets IAM keep each agent to its own
table items: its functions' grants carry `ForAllValues:StringLike {"dynamodb:LeadingKeys": ["<agent>_*"]}`
(infra/cdk `TasksTable.grant_agent_items`). The agent's name takes its room from the readable part, which is
shortened to keep the id within 80 characters.
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
TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
# Agent names become parts of Lambda function and state machine names (64 / 80 characters at most).
AGENT_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
#: Ends the agent's name at the start of a task id (and of a sensor task's `watch`): allowed in task ids
#: and execution names, never in an agent name.
AGENT_SEPARATOR = "_"
_MAX_TASK_ID = 80


def agent_key_prefix(agent: str) -> str:
    """What every key of `agent`'s table items starts with, and no other agent's: task ids, `watch` values."""
    return f"{check_agent_name(agent)}{AGENT_SEPARATOR}"


def task_id_from(agent: str, readable: Sequence[str], attempt: int, key: Sequence[object]) -> str:
    """The id of `agent`'s task named by `key` (everything that makes it unique, JSON-serializable).

    `readable` (two short names at most) and `attempt` only make the id legible; uniqueness is the hash's.
    Shared by every protocol's identity rule (Flyte 1's and Flyte 2's), so ids look alike whichever sent them.
    """
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:16]
    prefix, tail = agent_key_prefix(agent), f"-a{attempt}-{digest}"
    legible = "-".join(_UNSAFE.sub("_", part)[:24] for part in readable[:2])
    return f"{prefix}{legible[: _MAX_TASK_ID - len(prefix) - len(tail)]}{tail}"


def task_id_for(agent: str, execution_id: TaskExecutionIdentifier, output_prefix: str) -> str:
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
    return task_id_from(agent, (workflow.name, node.node_id), execution_id.retry_attempt, key)


def check_task_id(task_id: str, *, field: str = "task_id") -> str:
    if not TASK_ID.fullmatch(task_id):
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
