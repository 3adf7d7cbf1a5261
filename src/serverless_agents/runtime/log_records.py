"""One hook on every log record the process makes, for the modules that must see each one.

`Logger.makeRecord` is where every logger, stdlib or Powertools' (a stdlib logger inside), makes its records,
and it sets `extra=` keys after the record factory runs: a change made here sees the record whole, before any
handler or formatter. Masking (`serverless_agents.security.secrets`) and the task's id
(`serverless_agents.runtime.task_logging`) each add their change once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any


def after_make_record(change: Callable[[logging.LogRecord], logging.LogRecord]) -> None:
    """From now on, every record made is passed through `change` (install once per change)."""
    make_record = logging.Logger.makeRecord

    @functools.wraps(make_record)
    def changed_make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return change(make_record(self, *args, **kwargs))

    logging.Logger.makeRecord = changed_make_record  # type: ignore[method-assign]
