"""Flyte's messages on the wire: protobuf's JSON mapping, parsed with errors that name the bad field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from serverless_agents.exceptions import InvalidRequest

T = TypeVar("T", bound=Message)


def to_dict(message: Message) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message))


def from_dict(message_type: type[T], data: Any, *, field: str) -> T:
    if not isinstance(data, dict):
        raise InvalidRequest(field, f"expected a JSON object ({message_type.DESCRIPTOR.full_name})")
    message: T = message_type()
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as e:
        raise InvalidRequest(field, str(e)) from e
    return message


def from_json(message_type: type[T], body: str | bytes | None, *, field: str = "body") -> T:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(field, f"not valid JSON ({e})") from e
    return from_dict(message_type, data, field=field)
