"""The one place the runtime calls an agent's code: its results and errors leave with secrets masked.

Every agent method the runtime calls (`create`, `get`, `delete`, `do`, `poke`, `watch_key`, `event_keys`)
goes through `call_agent`. What comes back is what reaches Flyte, the tasks table, the state machine's
history and S3, so it is masked here (`redaction.redact_value`): a `Resource`'s message, outputs, custom
info and log links, resource metadata, and plain values. An exception the agent raises is raised again as
a masked one-line copy of the same class (see `redaction.redact_exception`), without the original chained
to it: Lambda's `errorMessage`, the state machine's `Cause` and any log of it show the copy.

A result is a pydantic model or a protobuf message only if the agent imported pydantic or protobuf: the
checks look for those classes among the modules loaded (`_loaded`), so a sensor's or a sync agent's
call loads neither.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TypeVar, cast

from serverless_agents.agent import RESERVED_CUSTOM_INFO, LogLink, Resource, resolve
from serverless_agents.exceptions import AgentError, RetryableAgentError
from serverless_agents.flyte import wire
from serverless_agents.runtime.endings import transient_beyond_its_name
from serverless_agents.security.masking import redact_message
from serverless_agents.security.redaction import has_secrets, redact, redact_exception, redact_value

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")


def call_agent(method: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`method(*args, **kwargs)`, run to completion whether plain or `async def`, with secrets masked."""
    try:
        result = resolve(method(*args, **kwargs))
        if isinstance(result, Resource):
            _check_custom_info(result)
    except Exception as e:
        # A transient error known as such only by what it wraps or the status it holds travels as
        # RetryableAgentError: the name is what the state machine's Retry rules and a masked copy keep.
        cause = RetryableAgentError(f"{type(e).__name__}: {e}") if transient_beyond_its_name(e) else e
        error = redact_exception(cause)
    else:
        return _redacted(result)
    # Raised outside the `except` block, so the original is not even the copy's implicit context.
    raise error from None


def _check_custom_info(resource: Resource) -> None:
    """The runtime's own custom_info keys would silently replace an agent's: refused, as the agent's fault."""
    clashing = sorted(RESERVED_CUSTOM_INFO.intersection(resource.custom_info))
    if clashing:
        raise AgentError(
            f"custom_info key(s) {', '.join(clashing)} are the runtime's own (reserved: "
            f"{', '.join(sorted(RESERVED_CUSTOM_INFO))}): name them otherwise"
        )


def _redacted(result: T) -> T:
    if not has_secrets():
        return result
    if isinstance(result, Resource):
        masked: Any = dataclasses.replace(
            result,
            # A message is often cut text (`body[:200]`): a partial secret at its ends is masked too.
            message=redact_message(result.message),
            log_links=[LogLink(redact(link.name), redact(link.uri)) for link in result.log_links],
            outputs=_redacted_outputs(result.outputs),
            custom_info=redact_value(result.custom_info),
        )
        return masked  # type: ignore[no-any-return]
    if _is_instance(result, "pydantic.main", "BaseModel"):
        model: Any = result
        dumped = model.model_dump(mode="json")
        redacted = redact_value(dumped)
        return result if redacted == dumped else cast("T", type(model).model_validate(redacted))
    return redact_value(result)


def _redacted_outputs(outputs: Any) -> Any:
    if _is_instance(outputs, "google.protobuf.message", "Message"):  # a LiteralMap the agent built itself
        data = wire.to_dict(outputs)
        redacted = redact_value(data)
        return outputs if redacted == data else wire.from_dict(type(outputs), redacted, field="outputs")
    return redact_value(dict(outputs)) if outputs is not None else None


def _is_instance(value: Any, module: str, name: str) -> bool:
    """isinstance(value, module.name), without importing `module`: nothing is an instance of a class that
    was never imported."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(value, cls)
