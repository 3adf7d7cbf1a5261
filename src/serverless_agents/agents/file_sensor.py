"""FileSensor: waits for a file to exist. Serves flytekit's own `flytekit.sensor.file_sensor.FileSensor`.

For `s3://` paths it asks S3 directly (`HeadObject`) and is event-driven: an S3 "Object Created" event for
the path pokes the task at once (the bucket must send events to EventBridge, see docs/agents/file-sensor.md).
Other paths go through fsspec, polled on the sensor's schedule.

Why boto3 rather than s3fs for S3: s3fs runs on aiobotocore, which pins botocore to narrow ranges (fighting
the Lambda runtime's boto3), adds tens of MB to the bundle, and is invisible to the moto emulator the tests
and the local stack run on. A HeadObject answers the same question.
"""

from __future__ import annotations

from typing import Any

from serverless_agents import aws
from serverless_agents.agent import BaseSensor
from serverless_agents.exceptions import AgentError
from serverless_agents.s3uri import parse_s3_uri


class FileSensor(BaseSensor):
    flytekit_sensor = ("flytekit.sensor.file_sensor", "FileSensor")

    def poke(self, path: str) -> bool:
        if path.startswith("s3://"):
            return _s3_object_exists(path)
        import fsspec  # the extra `sensors`: only non-S3 paths need it

        filesystem, _, (resolved,) = fsspec.get_fs_token_paths(path)
        return bool(filesystem.exists(resolved))

    def watch_key(self, **inputs: Any) -> str | None:
        path = inputs.get("path")
        return path if isinstance(path, str) and path.startswith("s3://") else None


def _s3_object_exists(path: str) -> bool:
    bucket, key = parse_s3_uri(path, "path")
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
