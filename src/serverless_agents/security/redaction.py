"""Masking what leaves an agent's code: values, exceptions, log records and standard output and error.

Every secret a process reads (`serverless_agents.security.secrets`) or is handed is remembered by
`serverless_agents.security.masking` and masked as `{secret:name}` here: `redact` / `redact_value` /
`redact_exception` for what an agent returns or raises (applied in one place, `runtime.boundary.call_agent`),
and, once `install` has run, in every log record as loggers make it (stdlib loggers and Powertools' alike)
and in what is printed to `sys.stdout` and `sys.stderr` (which Lambda sends to the function's log group).

`install` is explicit: the handlers' one entry decorator (`handlers.observability.lambda_handler`) calls it at
each invocation, as does the adapter when it starts; importing a module changes nothing in the process. The
process's file descriptors 1 and 2, which a subprocess or `os.write` reaches without passing `sys.stdout`,
are `serverless_agents.security.fd_redaction`'s (Lambda only).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

from serverless_agents.runtime.log_records import after_make_record
from serverless_agents.security import masking
from serverless_agents.security.masking import known, one_line, redact_message

T = TypeVar("T")


def install() -> None:
    """Mask remembered secrets in every log record made and in what is written to standard output and
    error, from now on. Idempotent and cheap: run at every invocation, because a test runner that
    captures output replaces `sys.stdout` between tests (Lambda never does)."""
    _install_log_redaction()
    _install_stream_redaction()


def redact(text: str) -> str:
    """`text` with every spelling of every secret read in this container replaced by `{secret:name}`."""
    return masking.redact(text)


def redact_value(value: T) -> T:
    """`value` with `redact` applied to every string inside it (dicts, lists and tuples are walked)."""
    if not has_secrets():
        return value
    redacted: T = _redact_value(value)
    return redacted


def redact_exception(error: BaseException) -> BaseException:
    """A copy of `error` whose message, attributes and chained causes are redacted, one line each.

    The copy's class is a subclass of the original's with the same name and module: Lambda reports
    `type(e).__name__` as `errorType`, which the state machine's Retry and Catch match, and `except`
    clauses and `isinstance` keep working (a `RetryableAgentError` stays one). It carries the original
    traceback: frames show code, never values.
    """
    return _redacted_copy(error, depth=0)


def has_secrets() -> bool:
    """True once this container has read a secret: until then there is nothing to mask."""
    return known.registry.pattern is not None


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redact_value(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


#: How deep a chain of causes is copied; deeper ones are dropped (a chain that long says nothing more).
_MAX_CHAIN = 8


def _redacted_copy(error: BaseException, depth: int) -> BaseException:
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not hide the error itself
        message = repr(error.args)
    copy = _copy_of(type(error), redact_message(one_line(message)))
    # Attributes (an InvalidRequest's field and problem, a ClientError's response) are kept, masked.
    vars(copy).update({k: _redact_value(v) for k, v in vars(error).items() if not k.startswith("__")})
    for note in getattr(error, "__notes__", None) or ():
        copy.add_note(redact_message(one_line(str(note))))
    copy.__traceback__ = error.__traceback__
    if depth < _MAX_CHAIN:
        copy.__cause__ = _redacted_copy(error.__cause__, depth + 1) if error.__cause__ else None
        context = error.__context__
        copy.__context__ = (
            _redacted_copy(context, depth + 1) if context and context is not error.__cause__ else None
        )
        copy.__suppress_context__ = error.__suppress_context__
    return copy


def _copy_of(kind: type[BaseException], message: str) -> BaseException:
    cls = _redacted_class(kind)
    try:
        copy = cls.__new__(cls)
    except Exception:
        cls = _stand_in(kind.__name__, kind.__module__)
        copy = cls.__new__(cls)
    copy.args = (message,)
    return copy


def _message_of(self: BaseException) -> str:
    return str(self.args[0]) if self.args else ""


class RedactedError(Exception):
    """Stands in for an exception whose type cannot be subclassed or built bare; named like it."""

    __str__ = _message_of


_classes: dict[type[BaseException], type[BaseException]] = {}


def _redacted_class(kind: type[BaseException]) -> type[BaseException]:
    if getattr(kind, "_redacted", False):
        return kind
    if kind not in _classes:
        _classes[kind] = _new_redacted_class(kind)
    return _classes[kind]


def _new_redacted_class(kind: type[BaseException]) -> type[BaseException]:
    try:
        # `__init__` is skipped (copies are made with `__new__`); `__str__` reads the masked message,
        # not the attributes the original's `__str__` may format (OSError's filename, KeyError's repr).
        return type(
            kind.__name__,
            (kind,),
            {
                "__module__": kind.__module__,
                "__qualname__": kind.__qualname__,
                "__str__": _message_of,
                "_redacted": True,
            },
        )
    except TypeError:  # a type that forbids subclassing, or whose layout cannot be extended
        return _stand_in(kind.__name__, kind.__module__)


@functools.cache
def _stand_in(name: str, module: str) -> type[BaseException]:
    return type(name, (RedactedError,), {"__module__": module, "_redacted": True})


# Log records: masked when they are made, before any handler or formatter sees them. `Logger.makeRecord`
# is wrapped rather than the record factory alone because `extra=` keys are set after the factory runs;
# every logger, stdlib or Powertools' (a stdlib logger inside), makes its records there.

_LOG_RECORD_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_log_lock = threading.Lock()
_log_installed = False


def _install_log_redaction() -> None:
    global _log_installed
    with _log_lock:
        if _log_installed:
            return
        after_make_record(_redact_record)
        _log_installed = True


class _RedactingStream:
    """A text stream that masks remembered secrets in what is written to it, and is otherwise the stream
    it wraps. One `write` is masked at a time: a secret split over two writes (two arguments of one
    `print`) is not seen here, but is at the descriptor in Lambda (`fd_redaction`, which holds back what
    may begin a secret); this wrapper covers where that is not installed (the local stack, tests)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if isinstance(text, str) else text)
        return len(text)  # what the caller wrote, as far as it knows

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _install_stream_redaction() -> None:
    """Wrap standard output and error, unless wrapped already (Lambda never replaces them; a test runner
    that captures output does, so this runs again as each secret is remembered)."""
    with _log_lock:
        if not isinstance(sys.stdout, _RedactingStream):
            sys.stdout = _RedactingStream(sys.stdout)
        if not isinstance(sys.stderr, _RedactingStream):
            sys.stderr = _RedactingStream(sys.stderr)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if not has_secrets():
        return record
    if isinstance(record.msg, dict):  # Powertools' structured message
        record.msg = _redact_value(record.msg)
        record.args = _redact_value(record.args)
    else:
        try:
            message = record.getMessage()
        except Exception:  # formatting fails later anyway; mask what it would print
            message = f"{record.msg!s} {record.args!r}"
        masked = redact_message(message)
        if masked != message:
            record.msg, record.args = masked, None
    for key, value in vars(record).items():
        if key not in _LOG_RECORD_STANDARD:  # `extra=` keys
            setattr(record, key, _redact_value(value))
    if record.exc_info and record.exc_info[1] is not None:
        error = redact_exception(record.exc_info[1])
        record.exc_info = (type(error), error, record.exc_info[2])
        record.exc_text = None
    return record
