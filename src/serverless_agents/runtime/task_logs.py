"""A task's own log lines, a bounded page at a time: what GetTaskLogs answers, for both protocols.

Every function of an agent writes to the agent's one log group (`naming.agent_log_group`), and the create,
get and delete handlers append the task's id to every line Powertools' Logger writes (`task_id`, in its JSON).
One FilterLogEvents call with the JSON pattern `{ $.task_id = "<id>" }` reads a page of them: at most
`limit` lines (never more than `MAX_LINES`), CloudWatch's `nextToken` handed back as the page's token, so
no call holds more than one page in memory however long the task logged. Each line is checked once more
here (its JSON parsed, its `task_id` equal to the task's): whatever a filter matched, no other task's line
is ever answered. The local stack writes the lines its functions logged to moto's CloudWatch Logs
(`serverless_agents.local.log_capture`), so the same call serves both.

Lines an agent logs through another logger than Powertools' (a library's stdlib logger, `print`) carry no
task id: they stay behind the task's log group link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from serverless_agents import aws
from serverless_agents.deployment.naming import agent_log_group
from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The most lines one page holds (CloudWatch's own limit is 10,000 events a call).
MAX_LINES = 1000
#: CloudWatch's `nextToken`s are opaque and a few hundred characters; anything longer is not one.
MAX_TOKEN = 4096


class LogsClient(Protocol):
    """What this module calls of boto3's CloudWatch Logs client."""

    def filter_log_events(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    message: str


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    token: str  # empty on the last page


def task_filter_pattern(task_id: str) -> str:
    """CloudWatch's JSON filter for the lines that carry `task_id` (a task id has no quote to escape)."""
    return f'{{ $.task_id = "{task_id}" }}'


class TaskLogs:
    """Pages of a task's lines from its agent's log group."""

    def __init__(self, deployment: str, client: LogsClient) -> None:
        self.deployment = deployment
        self._logs = client

    def page(self, agent: str, task_id: str, token: str = "", limit: int = MAX_LINES) -> LogPage:
        if len(token) > MAX_TOKEN:
            raise InvalidRequest("token", f"longer than {MAX_TOKEN} characters: not a token a page gave")
        if limit < 1:
            raise InvalidRequest("lines", "must be at least 1")
        request: dict[str, Any] = {
            "logGroupName": agent_log_group(self.deployment, agent),
            "filterPattern": task_filter_pattern(task_id),
            "limit": min(limit, MAX_LINES),
        }
        if token:
            request["nextToken"] = token
        try:
            with aws.transient_errors_as_unavailable("CloudWatch Logs"):
                answer = self._logs.filter_log_events(**request)
        except Exception as e:
            if aws.error_code(e) == "ResourceNotFoundException":
                return LogPage([], "")  # nothing logged yet: the group is made at the first line
            if aws.error_code(e) == "InvalidParameterException":
                raise InvalidRequest("token", "not a token a page of this task's logs gave") from None
            raise
        lines = [
            LogLine(int(event["timestamp"]), text)
            for event in answer.get("events", ())
            if (text := _text_for(str(event.get("message", "")), task_id)) is not None
        ]
        return LogPage(lines, str(answer.get("nextToken") or ""))


def _text_for(message: str, task_id: str) -> str | None:
    """What a user reads of a line the task logged (`LEVEL message`, and its exception), or None when the
    line is not the task's."""
    try:
        line = json.loads(message)
    except ValueError:
        return None
    if not isinstance(line, dict) or line.get("task_id") != task_id:
        return None
    text = f"{line.get('level', 'INFO')} {line.get('message', '')}"
    if line.get("exception"):
        text += f"\n{line['exception']}"
    return text
