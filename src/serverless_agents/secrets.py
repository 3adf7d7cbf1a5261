"""Agent secrets from AWS Secrets Manager, by the names the manifest gives them, and their masking.

    [agents.chat]
    secrets = { api_key = "arn:aws:secretsmanager:...:secret:openai-key" }

An agent calls `get_agent_secret("api_key")`. Values are cached per container (per Lambda cold start):
a rotated secret reaches new containers, and a warm one never pays for a second lookup. The value never
travels on the wire, in the state machine or in the tasks table.

Every value read here is also remembered for the life of the container, and masked as `{secret:name}`
wherever text leaves the agent's code: `redact` / `redact_value` for messages, outputs and errors (applied
in one place, `runtime.boundary.call_agent`), and in every log record, from the moment the first secret is
read (as loggers make records: stdlib loggers and Powertools' alike), and in what is printed to standard
output and error (which Lambda sends to the function's log group). An agent cannot echo a secret back to
Flyte or into its logs by mistake, in a message, an exception, an output, a log line or a `print`. What
it sends on purpose to a destination it chose (an HTTP header) is its business: see
`serverless_agents.outbound` for the checks on where that may be.

How text is masked (every spelling, before any cut, at a cut's edge, in pieces) is
`serverless_agents.masking`'s; the process's file descriptors 1 and 2, which a subprocess or `os.write`
reaches without passing `sys.stdout`, are masked by `serverless_agents.fd_redaction`, installed by the
Lambda handlers. A value shorter than `MIN_SECRET` characters is refused when read: it cannot be masked
without masking ordinary text, and no credential is that short.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from serverless_agents import aws, masking
from serverless_agents.exceptions import ManifestError
from serverless_agents.log_records import after_make_record
from serverless_agents.masking import MIN_SECRET, known, one_line, redact_message, secret_names
from serverless_agents.runtime.loading import cached_manifest
from serverless_agents.settings import AGENT, current_settings, environ

if TYPE_CHECKING:
    from serverless_agents.manifest import SecretDestination

T = TypeVar("T")


def get_agent_secret(name: str) -> str:
    agent, secrets = _agent_secret_ids(f"secret {name!r}")
    if name not in secrets:
        raise ManifestError(
            f"agent {agent!r} has no secret {name!r} in agents.toml (it has: {sorted(secrets)})"
        )
    return _remembered(name, secrets[name])


def get_agent_secrets() -> dict[str, str]:
    """Every secret of the agent, by name: for code that takes its credentials as keyword arguments
    (Flyte 2 connectors, which flyte-sdk's server calls with the `Connection` secrets that way)."""
    _, secrets = _agent_secret_ids("the agent's secrets")
    return {name: _remembered(name, secret_id) for name, secret_id in secrets.items()}


def get_connection_secrets(secret_id: str, scope: tuple[str, str] | None = None) -> dict[str, str]:
    """The Connection secrets Flyte 2's executor sent for a task (see `serverless_agents.
    connection_secrets`), by key: kept in one JSON secret under this agent's own prefix (IAM allows no
    other; checked here too), and, given the task's `scope` (Flyte project, domain), that scope's.
    Masked as `{secret:<key>}` like every secret read here."""
    from serverless_agents.naming import connection_secret_prefix

    settings = current_settings()
    agent, _ = _agent_secret_ids("connection secrets")
    prefix = connection_secret_prefix(settings.deployment, agent)
    if scope is not None:
        prefix += "".join(f"{part}/" for part in scope)
    rest = secret_id[len(prefix) :] if secret_id.startswith(prefix) else ""
    if not rest or (scope is not None and "/" in rest):
        owner = f"project/domain {'/'.join(scope)}" if scope else f"agent {agent!r}"
        raise ManifestError(f"connection secret {secret_id!r} is not {owner}'s")
    stored = json.loads(_secret_value(secret_id))
    if not isinstance(stored, dict):
        raise ManifestError(f"connection secret {secret_id!r} does not hold a JSON object")
    values = {str(key): str(value) for key, value in stored.items()}
    mask_secrets(values)
    return values


def mask_secrets(values: dict[str, str]) -> None:
    """Mask `values` (name -> value) from now on, as if read here: for secrets this process is handed
    rather than reads (the api Lambda holds Flyte 2's Connection secrets while it stores them)."""
    for name, value in values.items():
        _remember(name, value)


def _remembered(name: str, secret_id: str) -> str:
    """The value, remembered to be masked from now on: every value an agent reads passes here."""
    value = _secret_value(secret_id)
    if len(value) < MIN_SECRET:
        raise ManifestError(
            f"secret {name!r} ({secret_id}) holds {len(value)} character(s): a secret shorter than "
            f"{MIN_SECRET} cannot be masked in messages and logs without masking ordinary text"
        )
    _remember(name, value)
    return value


def _remember(name: str, value: str) -> None:
    """Mask `value` from now on, in what this process logs and prints too (installed at the first one)."""
    if known.remember(name, value):
        _install_log_redaction()
        _install_stream_redaction()


def _agent_secret_ids(asked_for: str) -> tuple[str, dict[str, str]]:
    settings = current_settings()
    if not settings.agent:
        raise ManifestError(f"{asked_for} asked for outside an agent's function (SA_AGENT is not set)")
    return settings.agent, cached_manifest(settings.manifest_path).agent(settings.agent).secret_ids


def agent_secret_destinations() -> dict[str, tuple[SecretDestination, ...]]:
    """name -> where the manifest lets that secret of this agent go (the outbound client's rules); empty
    outside an agent's function, where no secret is read either."""
    if not environ().get(AGENT):
        return {}
    settings = current_settings()
    agent = cached_manifest(settings.manifest_path).agent(str(settings.agent))
    return {name: tuple(secret.destinations) for name, secret in agent.secrets.items()}


#: Secret values by id, handed in instead of read from Secrets Manager: bound for the length of a call by
#: the in-process test tier (`serverless_agents.testing.LocalAgent`), as `settings` binds an environment.
_handed_in: ContextVar[Mapping[str, str] | None] = ContextVar("handed_in_secrets", default=None)


@contextmanager
def handed_in_secrets(values: Mapping[str, str]) -> Iterator[None]:
    """Answer secret reads from `values` (secret id -> value) within this block, never from AWS: an id
    missing from them is Secrets Manager's "not found", as for a secret nobody created."""
    token = _handed_in.set(values)
    try:
        yield
    finally:
        _handed_in.reset(token)


def _secret_value(secret_id: str) -> str:
    handed = _handed_in.get()
    if handed is None:
        return _stored_value(secret_id)
    if secret_id not in handed:
        from botocore.exceptions import ClientError

        not_found = "Secrets Manager can't find the specified secret."
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": not_found}}, "GetSecretValue"
        )
    return handed[secret_id]


@functools.cache
def _stored_value(secret_id: str) -> str:
    with aws.transient_errors_as_unavailable("Secrets Manager"):
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(value["SecretString"])


def redact(text: str) -> str:
    """`text` with every spelling of every secret read in this container replaced by `{secret:name}`."""
    return masking.redact(text)


def redact_value(value: T) -> T:
    """`value` with `redact` applied to every string inside it (dicts, lists and tuples are walked)."""
    if not has_secrets():
        return value
    redacted: T = _redact_value(value)
    return redacted


def secret_names_in(text: str) -> frozenset[str]:
    """The names of the secrets read in this container any spelling of which occurs in `text` (every
    spelling masking knows): what the outbound client checks a request against its destinations with."""
    return secret_names(text)


def redact_exception(error: BaseException) -> BaseException:
    """A copy of `error` whose message, attributes and chained causes are redacted, one line each.

    The copy's class is a subclass of the original's with the same name and module: Lambda reports
    `type(e).__name__` as `errorType`, which the state machine's Retry and Catch match, and `except`
    clauses and `isinstance` keep working (a `RetryableAgentError` stays one). It carries the original
    traceback: frames show code, never values.
    """
    return _redacted_copy(error, depth=0)


#: The registry, by the name it had when it lived here.
_known = known


def has_secrets() -> bool:
    """True once this container has read a secret: until then there is nothing to mask."""
    return known.registry.pattern is not None


def forget_secrets() -> None:
    """Forget every remembered value (tests: a new container)."""
    known.clear()
    _stored_value.cache_clear()


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
