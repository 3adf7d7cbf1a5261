"""`resource_meta`: what Flyte keeps to find a task again, issued by the API and read back by every caller.

The HTTP API's CreateTask answers it (`runtime.service`); propeller, Flyte 2's executor, the adapter and the
test client hand it back on every GetTask and DeleteTask, which name the task by the id inside it. It is
JSON, `{"task_id", "agent"}`: small, and naming nothing secret.
"""

from __future__ import annotations

import json

from serverless_agents.exceptions import InvalidRequest
from serverless_agents.identity import check_agent_name, check_task_id

# What `encode_resource_meta` issues is under 200 bytes; anything much larger is not ours.
_MAX_RESOURCE_META = 1024


def encode_resource_meta(task_id: str, agent: str) -> bytes:
    """The `resource_meta` of a task this service created."""
    return json.dumps({"task_id": task_id, "agent": agent}, separators=(",", ":")).encode()


def task_id_from_resource_meta(resource_meta: bytes) -> str:
    """The task id inside a `resource_meta` this service issued.

    Checked before it becomes part of a URL: whatever Flyte hands back is caller input, and an id that is not
    one would otherwise reach API Gateway (a 70 kB id is an HTML 414 there) or another path than the task's.
    """
    if len(resource_meta) > _MAX_RESOURCE_META:
        raise InvalidRequest("resource_meta", f"{len(resource_meta)} bytes: not one this service issued")
    try:
        meta = json.loads(resource_meta)
    except (ValueError, RecursionError):
        raise InvalidRequest("resource_meta", "not JSON, so not one this service issued") from None
    if not isinstance(meta, dict) or "task_id" not in meta:
        raise InvalidRequest("resource_meta", "not a resource_meta this service issued (no task_id)")
    task_id, agent = meta["task_id"], meta.get("agent")
    if not isinstance(task_id, str):
        raise InvalidRequest("resource_meta.task_id", "expected a string")
    if agent is not None:
        if not isinstance(agent, str):
            raise InvalidRequest("resource_meta.agent", "expected a string")
        check_agent_name(agent, field="resource_meta.agent")
    return check_task_id(task_id, field="resource_meta.task_id")
