"""What the local stack's functions log, written to moto's CloudWatch Logs as Lambda writes it on AWS.

On AWS each function's runtime sends what it logs to its log group (the plan's: one group per agent), a
JSON line per record (LoggingConfig `LogFormat: JSON`), its extra attributes as keys: a task's lines carry
`task_id` (`serverless_agents.runtime.task_logging`) and GetTaskLogs filters the group on it. The local stack
runs the handlers in this process, so `InProcessLambdas` opens an `invocation` around each call: the records
the invoking thread makes meanwhile, of any logger, are kept (at most `MAX_LINES_PER_INVOCATION`; one line
then says how many more there were) and put into the function's log group when the call ends, in the same JSON
shape. Other threads' records are not an invocation's and are left alone.

Lambda's runtime logs at INFO and above; the local stack keeps the terminal at WARNING
(`quiet_local_observability`). So while installed, the root logger and Powertools' make INFO records, and
the handlers they already had get their former level: the terminal shows what it showed before.

Bounded in memory: each function's lines go to a log stream of at most `MAX_LINES_PER_STREAM` lines, and only
the newest `STREAMS_KEPT` streams of a function are kept (as Lambda opens a stream per container, and a log
group's retention deletes old lines).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from serverless_agents.runtime.settings import POWERTOOLS_SERVICE

MAX_LINES_PER_INVOCATION = 1000
MAX_LINES_PER_STREAM = 2000
STREAMS_KEPT = 5


class _Stream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines = 0


class LogCapture(logging.Handler):
    """Keeps each in-process invocation's records and puts them in its function's log group."""

    def __init__(self, logs_client: Any, log_groups: Mapping[str, str]) -> None:
        """`log_groups`: function name -> the log group its LoggingConfig names (the plan's)."""
        super().__init__(logging.INFO)
        self._logs = logs_client
        self._log_groups = dict(log_groups)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._streams: dict[str, deque[_Stream]] = {}
        self._restore: list[tuple[logging.Logger | logging.Handler, int]] = []

    def install(self) -> None:
        # Powertools' Logger sets its level when made: make it now, so the level set here stays.
        from serverless_agents.handlers.observability import logger as _powertools  # noqa: F401

        for target in (logging.getLogger(), logging.getLogger(POWERTOOLS_SERVICE)):
            level = target.getEffectiveLevel()
            if level > logging.INFO:
                for handler in target.handlers:
                    if handler.level < level:
                        self._restore.append((handler, handler.level))
                        handler.setLevel(level)
                self._restore.append((target, target.level))
                target.setLevel(logging.INFO)
            target.addHandler(self)

    def uninstall(self) -> None:
        for target in (logging.getLogger(), logging.getLogger(POWERTOOLS_SERVICE)):
            target.removeHandler(self)
        for item, level in reversed(self._restore):
            item.setLevel(level)
        self._restore.clear()

    @contextlib.contextmanager
    def invocation(self, function_name: str, request_id: str) -> Iterator[None]:
        """Keep what this thread logs until the call ends, then write it to the function's log group."""
        group = self._log_groups.get(function_name)
        if group is None or getattr(self._local, "lines", None) is not None:
            yield  # not a planned function, or a call within a call (kept by the outer one)
            return
        self._local.lines, self._local.dropped, self._local.request_id = [], 0, request_id
        try:
            yield
        finally:
            lines, dropped = self._local.lines, self._local.dropped
            self._local.lines = None
            if dropped:
                lines.append(_line(time.time(), "WARNING", f"{dropped} more lines not kept", "local", None))
            if lines:
                self._put(function_name, group, lines)

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[tuple[int, str]] | None = getattr(self._local, "lines", None)
        if lines is None:
            return
        if len(lines) >= MAX_LINES_PER_INVOCATION:
            self._local.dropped += 1
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            extra = {"requestId": self._local.request_id}
            if isinstance(task_id := getattr(record, "task_id", None), str):
                extra["task_id"] = task_id
            lines.append(_line(record.created, record.levelname, message, record.name, extra))
        except Exception:
            self.handleError(record)

    def _put(self, function_name: str, group: str, lines: list[tuple[int, str]]) -> None:
        with self._lock:
            stream = self._stream(function_name, group, len(lines))
            self._logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": at, "message": text} for at, text in lines],
            )

    def _stream(self, function_name: str, group: str, adding: int) -> str:
        """The function's current stream, a new one when it is full; the oldest beyond `STREAMS_KEPT` go."""
        streams = self._streams.setdefault(function_name, deque())
        if not streams or streams[-1].lines + adding > MAX_LINES_PER_STREAM:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            stream = _Stream(f"{day}/[$LATEST]{function_name}-{time.monotonic_ns():x}")
            with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
                self._logs.create_log_group(logGroupName=group)
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream.name)
            streams.append(stream)
            while len(streams) > STREAMS_KEPT:
                self._logs.delete_log_stream(logGroupName=group, logStreamName=streams.popleft().name)
        streams[-1].lines += adding
        return streams[-1].name


def _line(
    created: float, level: str, message: str, logger: str, extra: dict[str, str] | None
) -> tuple[int, str]:
    """(milliseconds, the JSON line) in the shape of Lambda's JSON log format."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"timestamp": stamp, "level": level, "message": message, "logger": logger, **(extra or {})}
    return int(created * 1000), json.dumps(body, default=str)
