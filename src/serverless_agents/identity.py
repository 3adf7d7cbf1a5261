"""Task identity: one task id per Flyte task attempt, valid as a Step Functions execution name.

Flyte retries a task by creating it again with a new `retry_attempt`; a repeated CreateTask for the same
attempt (propeller retrying a timed-out call) must map to the same id, so the id is a pure function of
`TaskExecutionIdentifier`. A readable prefix helps whoever looks at the Step Functions console; the hash
makes it unique.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from flyteidl.core.identifier_pb2 import TaskExecutionIdentifier

# Execution names allow 80 characters, without whitespace and `"#%\^|~`$&,;:/` or brackets.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def task_id_for(execution_id: TaskExecutionIdentifier) -> str:
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
    ]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    readable = "-".join(_UNSAFE.sub("_", part)[:24] for part in (workflow.name, node.node_id))
    return f"{readable}-a{execution_id.retry_attempt}-{digest}"


def check_task_id(task_id: str) -> str:
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidRequest("task_id", f"{task_id!r} is not a task id")
    return task_id
