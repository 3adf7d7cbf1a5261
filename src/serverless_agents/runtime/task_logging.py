"""Every log record a function makes while it works on a task carries the task's id, as `task_id`.

GetTaskLogs reads a task's lines from its agent's log group with one JSON filter on `task_id`
(`serverless_agents.runtime.task_logs`), so the id must be on every line the task's invocations write: the
handlers' and the runtime's (Powertools' Logger), and the agent's own (stdlib loggers, a client library's).
Each record gets the attribute as it is made (`serverless_agents.runtime.log_records`, where masking changes
records too), after any `extra=` (an agent's own `task_id` extra wins, and none is refused as a clash).
Powertools' formatter, and Lambda's JSON log format (the functions' LoggingConfig) for other loggers, write a
record's extra attributes as keys of its line.

The id lives in a context variable, set by the create, get and delete handlers and cleared when the
invocation ends (`handlers.observability.lambda_handler`): a warm container's next invocation, or another
function of the local stack in another thread, never writes under a task it does not serve.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar

from serverless_agents.runtime.log_records import after_make_record

_task_id: ContextVar[str | None] = ContextVar("serverless_agents_task_id", default=None)
_lock = threading.Lock()
_installed = False


def current_task() -> str | None:
    return _task_id.get()


def log_for_task(task_id: str | None) -> None:
    """From now on (in this thread, until `end_task`), every record made carries `task_id`."""
    _install()
    _task_id.set(task_id or None)


def end_task() -> None:
    _task_id.set(None)


def _tagged(record: logging.LogRecord) -> logging.LogRecord:
    task_id = _task_id.get()
    if task_id is not None and not hasattr(record, "task_id"):
        record.task_id = task_id
    return record


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        after_make_record(_tagged)
        _installed = True
