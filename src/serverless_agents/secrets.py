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
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from serverless_agents import aws
from serverless_agents.exceptions import ManifestError
from serverless_agents.runtime.loading import cached_manifest
from serverless_agents.settings import current_settings

T = TypeVar("T")

#: Lines of a multi-line secret (a PEM key) this long or longer are masked on their own too: a message
#: may quote one line of it. Shorter lines ("-----END KEY-----" aside) carry nothing worth hiding.
_MIN_LINE = 16
#: Shorter values are not masked in base64: a few characters' encoding would mask unrelated text.
_MIN_BASE64 = 8


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
        _known.remember(name, value)


def _remembered(name: str, secret_id: str) -> str:
    """The value, remembered to be masked from now on: every value an agent reads passes here."""
    value = _secret_value(secret_id)
    _known.remember(name, value)
    return value


def _agent_secret_ids(asked_for: str) -> tuple[str, dict[str, str]]:
    settings = current_settings()
    if not settings.agent:
        raise ManifestError(f"{asked_for} asked for outside an agent's function (SA_AGENT is not set)")
    return settings.agent, cached_manifest(settings.manifest_path).agent(settings.agent).secrets


@functools.cache
def _secret_value(secret_id: str) -> str:
    with aws.transient_errors_as_unavailable("Secrets Manager"):
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(value["SecretString"])


def redact(text: str) -> str:
    """`text` with every secret read in this container replaced by `{secret:name}`."""
    return _known.redact(text)


def redact_value(value: T) -> T:
    """`value` with `redact` applied to every string inside it (dicts, lists and tuples are walked)."""
    if not _known.pattern:
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
    return _known.pattern is not None


def forget_secrets() -> None:
    """Forget every remembered value (tests: a new container)."""
    _known.clear()
    _secret_value.cache_clear()


class _KnownSecrets:
    """The values to mask, with one regex over all of them (longest first, so no value is half-masked)."""

    def __init__(self) -> None:
        self._masks: dict[str, str] = {}
        self._lock = threading.Lock()
        self.pattern: re.Pattern[str] | None = None

    def remember(self, name: str, value: str) -> None:
        forms = {form: f"{{secret:{name}}}" for form in _forms(value) if form not in self._masks}
        if not forms:
            return
        with self._lock:
            self._masks = {**self._masks, **forms}
            self.pattern = re.compile(
                "|".join(re.escape(v) for v in sorted(self._masks, key=len, reverse=True))
            )
        _install_log_redaction()
        _install_stream_redaction()

    def redact(self, text: str) -> str:
        pattern, masks = self.pattern, self._masks
        if pattern is None:
            return text
        return pattern.sub(lambda m: masks[m[0]], text)

    def clear(self) -> None:
        with self._lock:
            self._masks = {}
            self.pattern = None


_known = _KnownSecrets()


def _forms(value: str) -> set[str]:
    """The spellings of a secret a message may hold: as is, URL-encoded, on one line, its lines, and
    the string values inside a JSON secret (a secret often holds `{"username": ..., "password": ...}`)."""
    if not value:
        return set()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), " ".join(value.split())}
    forms.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_LINE)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        forms.update(leaf for leaf in _strings(parsed) if leaf)
        forms.update(json.dumps(leaf)[1:-1] for leaf in _strings(parsed) if leaf)
        if isinstance(parsed, dict):
            forms.update(_basic_credentials(parsed))
    # A secret sent base64-encoded (an `Authorization: Basic` header, a token in a URL) and echoed back.
    forms.update(*(_base64_forms(form) for form in list(forms) if len(form) >= _MIN_BASE64))
    return {form for form in forms if form.strip()}


def _base64_forms(value: str) -> set[str]:
    """Its base64 spelling, with its padding and without (the longer is masked first, so no `=` is left)."""
    encoded = base64.b64encode(value.encode()).decode()
    return {encoded, encoded.rstrip("=")}


def _basic_credentials(secret: dict[str, Any]) -> set[str]:
    """`user:password` of a JSON secret holding both (as RDS and most HTTP services store them): HTTP
    basic auth sends exactly that, base64-encoded."""
    user = next((secret[k] for k in ("username", "user", "login") if isinstance(secret.get(k), str)), None)
    password = next((secret[k] for k in ("password", "pass") if isinstance(secret.get(k), str)), None)
    return {f"{user}:{password}"} if user and password else set()


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _known.redact(value)
    if isinstance(value, dict):
        return {_redact_value(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


#: How deep a chain of causes is copied; deeper ones are dropped (a chain that long says nothing more).
_MAX_CHAIN = 8


def _redacted_copy(error: BaseException, depth: int) -> BaseException:
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not hide the error itself
        message = repr(error.args)
    copy = _copy_of(type(error), _one_line(redact(message)))
    # Attributes (an InvalidRequest's field and problem, a ClientError's response) are kept, masked.
    vars(copy).update({k: _redact_value(v) for k, v in vars(error).items() if not k.startswith("__")})
    for note in getattr(error, "__notes__", None) or ():
        copy.add_note(_one_line(redact(str(note))))
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
        make_record = logging.Logger.makeRecord

        @functools.wraps(make_record)
        def redacting_make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
            return _redact_record(make_record(self, *args, **kwargs))

        logging.Logger.makeRecord = redacting_make_record  # type: ignore[method-assign]
        _log_installed = True


class _RedactingStream:
    """A text stream that masks remembered secrets in what is written to it, and is otherwise the stream
    it wraps. One `write` is masked at a time: a secret split over two writes (two arguments of one
    `print`) is not seen; a secret printed as one value is."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_known.redact(text) if isinstance(text, str) else text)
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
    if _known.pattern is None:
        return record
    if isinstance(record.msg, dict):  # Powertools' structured message
        record.msg = _redact_value(record.msg)
        record.args = _redact_value(record.args)
    else:
        try:
            message = record.getMessage()
        except Exception:  # formatting fails later anyway; mask what it would print
            message = f"{record.msg!s} {record.args!r}"
        masked = _known.redact(message)
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
