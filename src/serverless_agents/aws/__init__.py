"""AWS clients (botocore's, which boto3's are), made once per process (a Lambda container) and only when
first used.

`client()` hands out a stand-in that makes the client at its first attribute access: building a store
(the tasks table, the payload bucket) costs nothing until it calls AWS, and a path that never calls a
service never loads that service's model (tens of milliseconds of a cold start each).

The runtime's objects never call `client()`: each takes its clients as typed constructor parameters, and
`runtime.wiring` (the composition root the handlers call) is the one place that makes them. Tests and the
local stack hand in their own (boto3 clients on moto). The types are boto3-stubs', a dev dependency that
no Lambda bundle carries, so they are imported for the type checker only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

from serverless_agents.exceptions import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_stepfunctions import SFNClient

# Codes AWS uses for "slow down" or "not now": the caller may retry; nothing was changed.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalFailure",
    }
)


@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["lambda"]) -> LambdaClient: ...
@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["scheduler"]) -> EventBridgeSchedulerClient: ...
@overload
def client(service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def client(service: Literal["stepfunctions"]) -> SFNClient: ...
@overload
def client(service: str) -> Any: ...
def client(service: str) -> Any:
    """A client in the invoking function's region (`AWS_REGION`, which the Lambda runtime sets), made
    when first used; typed as the service's boto3 client it stands in for."""
    from serverless_agents.runtime.settings import environ

    env = environ()
    return _ClientOnFirstUse(service, env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))


class _ClientOnFirstUse:
    """Every attribute is the shared client's (`_client`), which is made at the first one."""

    __slots__ = ("_region", "_service")

    def __init__(self, service: str, region: str | None) -> None:
        self._service = service
        self._region = region

    def __getattr__(self, name: str) -> Any:
        # Looked up on each use, not kept: after `forget_clients` the next use makes a new client.
        return getattr(_client(self._service, self._region), name)

    def __repr__(self) -> str:
        return f"<{self._service} client in {self._region or 'the default region'}, made at first use>"


@functools.cache
def _client(service: str, region: str | None) -> Any:
    return _session().create_client(service, region_name=region)


@functools.cache
def _session() -> Any:
    """One botocore session for every client, as `boto3.client` keeps one default session. botocore's own,
    not boto3's: a boto3 session adds only resources and S3's transfer methods, which nothing here uses,
    and `import boto3` loads s3transfer and the resource factory with it (about 100 ms of a cold start)."""
    import botocore.session

    return botocore.session.get_session()


def forget_clients() -> None:
    """Drop every client made so far, and their session (its credentials): the next `client()` makes new
    ones (after a SnapStart restore, whose snapshot must not hand one environment's connections to
    another)."""
    _client.cache_clear()
    _session.cache_clear()


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


@contextmanager
def transient_errors_as_unavailable(service: str) -> Iterator[None]:
    """Turn AWS throttling and outages into `ServiceUnavailable`; every other error passes unchanged."""
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

    try:
        yield
    except ClientError as e:
        if error_code(e) in _TRANSIENT_CODES:
            raise ServiceUnavailable(f"{service} is throttling or unavailable: {error_code(e)}") from e
        raise
    except (ConnectionError, ReadTimeoutError) as e:
        raise ServiceUnavailable(f"{service} cannot be reached: {e}") from e
