"""Every log record a function makes while it works on a task carries the task's id, as `task_id`.

GetTaskLogs reads a task's lines from its agent's log group with one JSON filter on `task_id`
(`serverless_agents.runtime.task_logs`), so the id must be on every line the task's invocations write: the
handlers' (Powertools' Logger, which also gets it by `append_keys`), the runtime's and the agent's own
(stdlib loggers, a client library's). `Logger.makeRecord` is wrapped, as `serverless_agents.secrets` wraps
it for masking, so a record gets the attribute after any `extra=` (an agent's own `task_id` extra wins,
and none is refused as a clash); Lambda's JSON log format (the functions' LoggingConfig) writes a record's
extra attributes as keys of its line, as Powertools' formatter does.

The id lives in a context variable, set by the create, get and delete handlers and cleared when the
invocation ends (`handlers.observability.lambda_handler`): a warm container's next invocation, or another
function of the local stack in another thread, never writes under a task it does not serve.
"""

from __future__ import annotations

import functools
import logging
import threading
from contextvars import ContextVar
from typing import Any

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


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        make_record = logging.Logger.makeRecord

        @functools.wraps(make_record)
        def tagged_make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(self, *args, **kwargs)
            task_id = _task_id.get()
            if task_id is not None and not hasattr(record, "task_id"):
                record.task_id = task_id
            return record

        logging.Logger.makeRecord = tagged_make_record  # type: ignore[method-assign]
        _installed = True
