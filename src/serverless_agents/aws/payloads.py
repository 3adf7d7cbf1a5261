"""The payload bucket: what is too large for a state machine's state (256 KB) or a table item (400 KB).

Large requests and outputs are written here and travel as `s3://bucket/key` references. Keys derive from
the task id, so a retried write lands on the same object instead of leaving an orphan, and carry the
agent's name, so IAM can give each agent's functions its own prefix and no other agent's (infra/cdk grants
`payload_key(kind, agent, "*")`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, get_args

from serverless_agents import aws
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.exceptions import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Kept well under the hard limits, leaving room for the rest of the state or item around the payload.
STATE_PAYLOAD_LIMIT = 200_000
ITEM_PAYLOAD_LIMIT = 300_000

#: `requests`: what Flyte sent (the api writes, the agent's functions read); `outputs`: what Flyte receives
#: (get writes, the api reads); `state`: what an async agent keeps between its calls (the example JobAgent's
#: jobs). Each is a top-level prefix, so one lifecycle rule expires it for every agent.
PayloadKind = Literal["requests", "outputs", "state"]
PAYLOAD_KINDS: tuple[PayloadKind, ...] = get_args(PayloadKind)


def payload_key(kind: PayloadKind, agent: str, name: str) -> str:
    """`<kind>/<agent>/<name>.json`; `name` is a task id (or `*` in an IAM grant)."""
    return f"{kind}/{agent}/{name}.json"


class PayloadStore:
    def __init__(self, bucket: str, *, client: S3Client) -> None:
        self.bucket = bucket
        self._client = client

    def put_json(self, key: str, data: Any) -> str:
        with aws.transient_errors_as_unavailable("S3"):
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(data, separators=(",", ":")).encode(),
                ContentType="application/json",
            )
        return f"s3://{self.bucket}/{key}"

    def get_json(self, uri: str) -> Any:
        key = self._key(uri)
        with aws.transient_errors_as_unavailable("S3"):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return json.loads(body)

    def _key(self, uri: str) -> str:
        """The key `uri` names in this bucket: a ref to any other bucket is refused, never read."""
        try:
            bucket, key = parse_s3_uri(uri, "ref")
        except InvalidRequest as e:
            raise InvalidRequest(
                "ref", f"{e.problem}, an object in the payload bucket {self.bucket}"
            ) from None
        if bucket != self.bucket:
            raise InvalidRequest("ref", f"{uri!r} is not an object in the payload bucket {self.bucket}")
        return key

    def offload(self, key: str, data: Any, limit: int) -> tuple[Any, str | None]:
        """`(data, None)` when it fits within `limit` bytes of JSON, else `(None, s3 uri)`."""
        if len(json.dumps(data, separators=(",", ":"))) <= limit:
            return data, None
        return None, self.put_json(key, data)
