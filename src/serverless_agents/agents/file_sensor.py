"""FileSensor: waits for a file to exist. Serves flytekit's own `flytekit.sensor.file_sensor.FileSensor`.

For `s3://` paths it asks S3 directly (`HeadObject`) and is event-driven: an S3 "Object Created" event for
the path pokes the task at once (the bucket must send events to EventBridge, see docs/agents/file-sensor.md).
Other paths go through fsspec, polled on the sensor's schedule, and only for the protocols the manifest's
`config.protocols` names: `fspaths.check_path` refuses every other path at create (and again at each poke),
local paths always, and checks hosts by the outbound rules (`config.allowed_hosts`,
`config.allow_private_networks`).

What fsspec raises is not shown: "connection refused" and "timed out" would tell a task author which ports
the Lambda's network reaches. Every failure reads the same (`_UNANSWERED`).

Why boto3 rather than s3fs for S3: s3fs runs on aiobotocore, which pins botocore to narrow ranges (fighting
the Lambda runtime's boto3), adds tens of MB to the bundle, and is invisible to the moto emulator the tests
and the local stack run on. A HeadObject answers the same question.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serverless_agents import aws
from serverless_agents.agent import BaseSensor
from serverless_agents.exceptions import AgentError, DestinationUnavailable, RetryableAgentError
from serverless_agents.security.fspaths import allowed_protocols, check_path, exists_options
from serverless_agents.security.outbound import OutboundClient

_FIELD = "inputs.path"
#: The one message for a path fsspec could not answer about, whatever went wrong (see the module's doc).
_UNANSWERED = "cannot tell whether the path exists: its filesystem did not answer"


class FileSensor(BaseSensor):
    flytekit_sensor = ("flytekit.sensor.file_sensor", "FileSensor")

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.protocols = allowed_protocols(self.config.get("protocols"))
        self.outbound = OutboundClient.from_config(self.config)

    def check_inputs(self, **inputs: Any) -> None:
        check_path(inputs.get("path"), _FIELD, self.protocols, self.outbound)

    def poke(self, path: str) -> bool:
        try:
            checked = check_path(path, _FIELD, self.protocols, self.outbound, unresolved_ok=False)
        except DestinationUnavailable:
            raise RetryableAgentError(_UNANSWERED) from None
        if checked.s3 is not None:
            return _s3_object_exists(path, *checked.s3)
        import fsspec  # the extra `sensors`: only non-S3 paths need it

        try:
            filesystem, _, (resolved,) = fsspec.get_fs_token_paths(checked.path)
            return bool(filesystem.exists(resolved, **exists_options(checked)))
        except ImportError as e:  # the protocol's backend (gcsfs, ...) is not in the bundle: say which
            raise AgentError(f"fsspec cannot open {checked.protocols[-1]}:// paths here: {e}") from None
        except Exception:
            raise RetryableAgentError(_UNANSWERED) from None

    def watch_key(self, **inputs: Any) -> str | None:
        path = inputs.get("path")
        return path if isinstance(path, str) and path.startswith("s3://") else None


def _s3_object_exists(path: str, bucket: str, key: str) -> bool:
    client = aws.client("s3")
    try:
        with aws.transient_errors_as_unavailable("S3"):
            client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as e:
        if aws.error_code(e) in ("404", "NoSuchKey", "NotFound"):
            return False
        if aws.error_code(e) in ("403", "AccessDenied"):
            # Without s3:ListBucket, S3 answers 403 for a missing key too: say what to grant.
            raise AgentError(
                f"access denied to {path}: grant the sensor s3:GetObject on it and s3:ListBucket on "
                f"{bucket} (the `permissions` of this agent in agents.toml)"
            ) from None
        raise
    return True
