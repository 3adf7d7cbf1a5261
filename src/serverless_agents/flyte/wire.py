"""Flyte's messages on the wire: protobuf's JSON mapping, parsed with errors that name the bad field.

Every body and event the project parses goes through `from_json` / `from_dict`, so the limits that keep
hostile input a 400 live here, once: the size of a body (API Gateway's 10 MB payload limit), its nesting
depth (the JSON parser and protobuf's recurse, and a body of 50,000 `[` would end in a RecursionError), lone
surrogates (not UTF-8, so protobuf, DynamoDB and Step Functions each fail on them in their own way), and
non-finite numbers (`NaN` is not JSON, and Step Functions refuses it). `to_dict` turns what protobuf cannot
write as JSON (a Timestamp past year 9999, a Duration whose parts disagree in sign) into the same kind of
error, naming the field.

protobuf is imported by the functions that build or write a message, not by this module: the JSON checks
(`json_object`, `check_json`) serve paths that only move JSON, which then load no protobuf.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, TypeVar

from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from google.protobuf import duration_pb2, timestamp_pb2
    from google.protobuf.message import Message

T = TypeVar("T", bound="Message")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit: nothing larger ever reaches a Lambda there
#: How long a client waits for the answer, in milliseconds from API Gateway's receipt of the request: a
#: create the API could not finish within it starts nothing (`http_api`, `runtime.service`).
CLIENT_TIMEOUT_HEADER = "X-Client-Timeout-Ms"
# Protobuf's own recursion limit for binary messages is 100; no Flyte message nests deeper in JSON form.
MAX_DEPTH = 100

# The ranges protobuf's JSON mapping can write (RFC 3339 years 0001 to 9999; Durations of +-10,000 years).
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
MAX_DURATION_SECONDS = 315_576_000_000
_NANOS = 999_999_999


def to_dict(message: Message, *, field: str = "request") -> dict[str, Any]:
    from google.protobuf import json_format

    try:
        return dict(json_format.MessageToDict(message))
    except json_format.SerializeToJsonError as e:
        path = _invalid_time_field(message)
        raise InvalidRequest(f"{field}.{path}" if path else field, str(e)) from None


def from_dict(message_type: type[T], data: Any, *, field: str) -> T:
    if not isinstance(data, dict):
        raise InvalidRequest(field, f"expected a JSON object ({message_type.DESCRIPTOR.full_name})")
    from google.protobuf import json_format

    check_json(data, field=field)
    message: T = message_type()
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as e:
        raise InvalidRequest(field, str(e)) from e
    return message


def from_json(message_type: type[T], body: str | bytes | None, *, field: str = "body") -> T:
    return from_dict(message_type, _parsed(body, field), field=field)


def json_object(body: str | bytes | None, *, field: str = "body") -> dict[str, Any]:
    """A body that holds a JSON object (messages side by side), under the limits `check_json` keeps."""
    data = _parsed(body, field)
    if not isinstance(data, dict):
        raise InvalidRequest(field, "expected a JSON object")
    check_json(data, field=field)
    return data


def _parsed(body: str | bytes | None, field: str) -> Any:
    size = len(body.encode(errors="surrogatepass") if isinstance(body, str) else body or b"")
    if size > MAX_BODY_BYTES:
        raise InvalidRequest(field, f"{size} bytes, over the {MAX_BODY_BYTES} byte limit")
    try:
        data = json.loads(body or b"", parse_constant=_not_json)
    except RecursionError:
        raise InvalidRequest(field, f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(field, f"not valid JSON ({e})") from e
    return data


def check_json(data: Any, *, field: str) -> None:
    """Refuse what JSON parsers accept but Flyte's messages and AWS cannot hold, naming where it is.

    Iterative, so a value nested too deeply for recursion is reported rather than crashing the walk.
    """
    stack: list[tuple[Any, str, int]] = [(data, field, 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(path, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(path, f"{value} is not a JSON number")
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(str(key), path)
                stack.append((item, f"{path}.{_shown(str(key))}", depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise InvalidRequest(path, f"a lone surrogate at character {e.start} is not valid Unicode") from None


def _shown(key: str) -> str:
    """A key as it may appear in a field path: printable, short, and never a lone surrogate."""
    text = key.encode(errors="backslashreplace").decode()
    return text if len(text) <= 40 and text.isprintable() else json.dumps(text[:37] + "...")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def timestamp_problem(stamp: timestamp_pb2.Timestamp) -> str | None:
    """Why protobuf's JSON mapping (and Python's datetime) cannot hold this Timestamp, if it cannot."""
    if _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos <= _NANOS:
        return None
    return "expected a time between the years 1 and 9999, with nanos from 0 to 999999999"


def duration_problem(duration: duration_pb2.Duration) -> str | None:
    """Why protobuf's JSON mapping cannot hold this Duration, if it cannot."""
    within = abs(duration.seconds) <= MAX_DURATION_SECONDS and abs(duration.nanos) <= _NANOS
    if within and duration.seconds * duration.nanos >= 0:
        return None
    return "expected a duration within 10,000 years, its seconds and nanos of one sign"


def _invalid_time_field(message: Message, path: str = "") -> str | None:
    """The path of the first Timestamp or Duration protobuf's JSON mapping cannot write (from to_dict)."""
    from google.protobuf import duration_pb2, timestamp_pb2
    from google.protobuf.message import Message

    if isinstance(message, timestamp_pb2.Timestamp):
        return None if timestamp_problem(message) is None else path
    if isinstance(message, duration_pb2.Duration):
        return None if duration_problem(message) is None else path
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        name = f"{path}.{descriptor.json_name}" if path else descriptor.json_name
        if descriptor.message_type.GetOptions().map_entry:
            items = [(f"{name}[{json.dumps(str(k))}]", v) for k, v in value.items()]
        elif descriptor.is_repeated:
            items = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(name, value)]
        for item_path, item in items:
            if isinstance(item, Message) and (found := _invalid_time_field(item, item_path)) is not None:
                return found
    return None
