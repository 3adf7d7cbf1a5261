"""`ResourceMetadata`, the base of an agent's resource metadata (a pydantic model), and the one of
connectors' agents.

Apart from the rest of the SDK (`serverless_agents.agent`, which re-exports it at its first use) so that only
an async agent's functions, whose metadata is a model, import pydantic.
"""

import base64
from typing import Any, Self

from pydantic import BaseModel


class ResourceMetadata(BaseModel):
    """Base for an agent's resource metadata: whatever `get` and `delete` need to find the job again.

    It is stored in the tasks table and travels through the state machine as JSON, so keep it small and
    never put a secret in it.
    """


class EncodedResourceMeta(ResourceMetadata):
    """A connector's resource metadata (`agents.connectors`): its own `ResourceMeta`, encoded."""

    #: The connector's `ResourceMeta.encode()`, base64: bytes of its own making.
    resource_meta: str

    @classmethod
    def of(cls, encoded: bytes, **fields: Any) -> Self:
        return cls(resource_meta=base64.b64encode(encoded).decode(), **fields)

    @property
    def encoded(self) -> bytes:
        """The bytes the connector's `encode()` made, for its `metadata_type.decode`."""
        return base64.b64decode(self.resource_meta)
