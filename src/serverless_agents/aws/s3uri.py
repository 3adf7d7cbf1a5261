"""`s3://bucket/key` URIs: the one parser of the project (payload refs, sensor paths, Flyte's prefixes).

Not `urllib.parse`: an S3 key may hold `?`, `#`, `%` and `;`, which a URL parser takes for a query, a
fragment or an escape and strips or decodes, so two readers of one URI would name two objects. Here the
key is everything after the bucket's `/`, byte for byte, as the AWS CLI and fsspec read it.
"""

from __future__ import annotations

import string
from typing import Any

from serverless_agents.exceptions import InvalidRequest

__all__ = ["check_text", "event_buckets", "parse_s3_uri"]

_SCHEME = "s3://"
#: What bucket names are made of; legacy us-east-1 buckets may also hold upper case and `_`, so the rest of
#: the naming rules (length, dots, case) are left to S3 to enforce.
_BUCKET_CHARACTERS = frozenset(string.ascii_letters + string.digits + ".-_")
#: S3's own limit on a key, in UTF-8 bytes.
_MAX_KEY_BYTES = 1024
_FORM = "expected s3://bucket/key"
#: How much of a URI an error message quotes: enough to recognize it, never a megabyte of it.
_SHOWN = 200


def parse_s3_uri(uri: str, field: str = "uri", *, key_required: bool = True) -> tuple[str, str]:
    """`(bucket, key)` of `s3://bucket/key`; `InvalidRequest` naming `field` for anything else.

    With `key_required=False` a bucket alone (`s3://bucket`, `s3://bucket/`) is a prefix: its key is "".
    """
    shown = repr(uri) if len(uri) <= _SHOWN else f"{uri[:_SHOWN]!r}..."
    if not uri.startswith(_SCHEME):
        raise InvalidRequest(field, f"{shown} is not an s3:// URI: {_FORM}")
    bucket, _, key = uri.removeprefix(_SCHEME).partition("/")
    if not bucket:
        raise InvalidRequest(field, f"{shown} names no bucket: {_FORM}")
    if not set(bucket) <= _BUCKET_CHARACTERS:
        raise InvalidRequest(field, f"{shown}: a bucket name holds only letters, digits, '.', '-' and '_'")
    if key_required and not key:
        raise InvalidRequest(field, f"{shown} names no object key: {_FORM}")
    check_text(key, field, f"{shown}: the key", _MAX_KEY_BYTES, "S3's ")
    return bucket, key


def check_text(text: str, field: str, what: str, max_bytes: int, whose: str = "") -> None:
    """`text` (`what`, as a message names it) is UTF-8 of at most `max_bytes` bytes without a control
    character; else `InvalidRequest` naming `field`. Also FileSensor paths' check (`fspaths`)."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidRequest(field, f"{what} is not valid unicode (UTF-8)") from None
    if size > max_bytes:
        raise InvalidRequest(field, f"{what} is {size} bytes, over {whose}{max_bytes}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InvalidRequest(field, f"{what} holds a control character")


def event_buckets(patterns: list[dict[str, Any]]) -> list[str]:
    """The buckets S3 event patterns name exactly (`detail.bucket.name`), in order: the manifest's (the
    local stack creates them) or a deployed stack's rules' (`serverless-agents check` uploads there)."""
    names: list[str] = []
    for pattern in patterns:
        for name in pattern.get("detail", {}).get("bucket", {}).get("name", []):
            if isinstance(name, str) and name not in names:  # not a content filter such as {prefix = ...}
                names.append(name)
    return names
