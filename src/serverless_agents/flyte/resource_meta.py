"""`resource_meta`: what Flyte keeps to find a task: issued by the API, signed by the adapter, read back.

The HTTP API's CreateTask answers it (`runtime.service`) as JSON, `{"task_id", "agent"}`: small, and naming
nothing secret. The API is behind IAM (SigV4), so whoever calls it is trusted; the adapter is not: any pod
that reaches its port could hand it a `resource_meta` of its own making, and task ids are computable from
what Flyte shows (`identity.task_id_for`). So the adapter signs what the API issued before Flyte sees it
(`ResourceMetaKeys.sign`: HMAC-SHA256 over the task id and the agent, added as `"sig"`), and every call that
reads or aborts a task verifies it first (`ResourceMetaKeys.verify`), then checks that the signed agent is
the one serving the call's task type. The key lives in the adapter only (a Kubernetes secret, as the
environment); rotation is a list: the first key signs, any verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from serverless_agents.exceptions import InvalidRequest, ManifestError
from serverless_agents.flyte.identity import check_agent_name, check_task_id

# What `encode_resource_meta` issues is under 200 bytes, signed under 250; anything much larger is not ours.
_MAX_RESOURCE_META = 1024
#: The adapter's signing keys, comma-separated: the first signs, any verifies (rotation).
KEYS_ENV = "SA_RESOURCE_META_KEYS"
#: "true": accept `resource_meta` without a signature (tasks created before signing was turned on).
ALLOW_UNSIGNED_ENV = "SA_RESOURCE_META_ALLOW_UNSIGNED"
#: A key shorter than this is refused: HMAC-SHA256's key should carry 256 bits (`openssl rand -hex 32`).
MIN_KEY_CHARACTERS = 32
# Binds the signature to its purpose and format, so the key cannot be made to sign anything else.
_DOMAIN = b"serverless-agents resource_meta v1\n"


@dataclass(frozen=True)
class ResourceMeta:
    task_id: str
    #: None only in an unsigned `resource_meta` accepted during migration (older ones may lack it).
    agent: str | None


def encode_resource_meta(task_id: str, agent: str) -> bytes:
    """The `resource_meta` of a task this service created."""
    return json.dumps({"task_id": task_id, "agent": agent}, separators=(",", ":")).encode()


def _decode(resource_meta: bytes) -> tuple[ResourceMeta, object]:
    """The ids inside, checked before either becomes part of a URL (a 70 kB id is an HTML 414 at API
    Gateway), and the signature as found (not yet verified)."""
    if len(resource_meta) > _MAX_RESOURCE_META:
        raise InvalidRequest("resource_meta", f"{len(resource_meta)} bytes: not one this service issued")
    try:
        meta = json.loads(resource_meta)
    except (ValueError, RecursionError):
        raise InvalidRequest("resource_meta", "not JSON, so not one this service issued") from None
    if not isinstance(meta, dict) or "task_id" not in meta:
        raise InvalidRequest("resource_meta", "not a resource_meta this service issued (no task_id)")
    task_id, agent = meta["task_id"], meta.get("agent")
    if not isinstance(task_id, str):
        raise InvalidRequest("resource_meta.task_id", "expected a string")
    if agent is not None:
        if not isinstance(agent, str):
            raise InvalidRequest("resource_meta.agent", "expected a string")
        check_agent_name(agent, field="resource_meta.agent")
    return ResourceMeta(check_task_id(task_id, field="resource_meta.task_id"), agent), meta.get("sig")


def task_id_from_resource_meta(resource_meta: bytes) -> str:
    """The task id inside a `resource_meta` this service issued, signed or not: for the API's own callers
    (IAM-authenticated), never for the adapter's, which verify it (`ResourceMetaKeys.verify`)."""
    return _decode(resource_meta)[0].task_id


class ResourceMetaKeys:
    """Signs the `resource_meta` the API issues and verifies what callers hand back."""

    def __init__(self, keys: Sequence[str], *, allow_unsigned: bool = False) -> None:
        if not keys:
            raise ManifestError(f"{KEYS_ENV}: no key to sign resource_meta with")
        for position, key in enumerate(keys, 1):
            if len(key) < MIN_KEY_CHARACTERS:
                # The position, never the key: this message is printed and logged.
                raise ManifestError(
                    f"{KEYS_ENV}: key {position} has {len(key)} characters, fewer than "
                    f"{MIN_KEY_CHARACTERS} (make one with `openssl rand -hex 32`)"
                )
        self._keys = [key.encode() for key in keys]
        self.allow_unsigned = allow_unsigned

    @classmethod
    def random(cls) -> ResourceMetaKeys:
        """A key for one process (the local stack, tests): what it signed no other process verifies."""
        return cls([secrets.token_hex(32)])

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ResourceMetaKeys:
        env = os.environ if env is None else env
        keys = [key.strip() for key in env.get(KEYS_ENV, "").split(",") if key.strip()]
        if not keys:
            raise ManifestError(
                f"{KEYS_ENV} is not set: the adapter signs every resource_meta it hands to Flyte. Set it to "
                "a random key (`openssl rand -hex 32`), the same for every replica (the chart takes it from "
                "a Kubernetes secret); see docs/flyte-integration.md#signed-resource_meta"
            )
        allow = env.get(ALLOW_UNSIGNED_ENV, "").strip().lower()
        if allow not in ("", "true", "false"):
            raise ManifestError(f"{ALLOW_UNSIGNED_ENV}: {allow[:20]!r} is not true or false")
        return cls(keys, allow_unsigned=allow == "true")

    def _signature(self, key: bytes, meta: ResourceMeta) -> str:
        message = _DOMAIN + f"{meta.task_id}\n{meta.agent}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, resource_meta: bytes) -> bytes:
        """The API's `resource_meta` with the signature of the first key added (still small JSON)."""
        meta, _ = _decode(resource_meta)
        if meta.agent is None:
            raise InvalidRequest("resource_meta.agent", "missing in what the API issued")
        signed = {"task_id": meta.task_id, "agent": meta.agent, "sig": self._signature(self._keys[0], meta)}
        return json.dumps(signed, separators=(",", ":")).encode()

    def verify(self, resource_meta: bytes) -> ResourceMeta:
        """The task a `resource_meta` names, if one of the keys signed it. INVALID_ARGUMENT otherwise: it is
        not one this adapter issued, and that is all a caller learns (not whether the task exists)."""
        meta, signature = _decode(resource_meta)
        if signature is None:
            if self.allow_unsigned:
                return meta
            raise InvalidRequest(
                "resource_meta",
                "not signed: issued before this adapter signed resource_meta, or not by it. To finish tasks "
                f"created before signing was turned on, set {ALLOW_UNSIGNED_ENV}=true until they end",
            )
        if meta.agent is None or not isinstance(signature, str):
            raise InvalidRequest("resource_meta.sig", "not a signature this adapter made")
        given = signature.encode()
        if not any(hmac.compare_digest(self._signature(key, meta).encode(), given) for key in self._keys):
            raise InvalidRequest(
                "resource_meta.sig",
                f"does not match: not issued by this adapter, altered, or signed with a key no longer in "
                f"{KEYS_ENV}",
            )
        return meta
