"""What the api and sync Lambdas' resolvers share: Powertools' REST resolver kept per thread, and the one
mapping from exceptions to HTTP answers.

Apart from the routes so that a sync agent's function, which serves one route, loads none of the api's
parameter validation (Powertools' OpenAPI params, pydantic): its first invocation is a caller's wait.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from serverless_agents.exceptions import InvalidRequest, RouteNotFound, ServerlessAgentsError, http_status_of
from serverless_agents.flyte import wire

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from google.protobuf.message import Message

logger = logging.getLogger(__name__)


def error_response(error: Exception) -> Response[str]:
    """The one mapping from our exceptions (and anything unexpected) to an HTTP response."""
    status = http_status_of(error)
    body: dict[str, Any] = {"code": type(error).__name__, "message": str(error)}
    if isinstance(error, InvalidRequest):
        body |= {"field": error.field, "message": error.problem}
    if status == 500:
        logger.exception("request failed")
        if not isinstance(error, ServerlessAgentsError):
            body["message"] = f"{type(error).__name__}: {error}"
    body["message"] = " ".join(str(body["message"]).split())  # one line, whatever the exception held
    return Response(status, "application/json", json.dumps({"error": body}))


def _validation_response(error: RequestValidationError) -> Response[str]:
    first = error.errors()[0] if error.errors() else {"loc": ["request"], "msg": "invalid"}
    field = ".".join(str(part) for part in first.get("loc", ()) if part not in ("path", "body", "query"))
    return error_response(InvalidRequest(field or "request", str(first.get("msg", "invalid"))))


def message_response(message: Message, status: int = 200) -> Response[str]:
    return Response(status, "application/json", json.dumps(wire.to_dict(message)))


class _Resolver(APIGatewayRestResolver):
    """Powertools' resolver, keeping the request it serves per thread.

    Powertools keeps it on a class (`BaseRouter.current_event = ...` in `resolve`), so two requests served at
    once in one process read each other's. On Lambda a container serves one request at a time; the local
    stack serves the api function's invocations at once, as Lambda would in as many containers (one
    resolver per thread: handlers/api.py), and this keeps each request to its thread."""

    def __init__(self, validation: bool) -> None:
        self._served = threading.local()
        super().__init__(enable_validation=validation)

    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        return self._served.event  # type: ignore[no-any-return]

    @current_event.setter
    def current_event(self, event: BaseProxyEvent) -> None:
        self._served.event = event

    def resolve(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # type: ignore[override]
        self._served.event = self._to_proxy_event(event)
        return super().resolve(event, context)


def resolver(*, validation: bool) -> APIGatewayRestResolver:
    """A resolver answering errors as `error_response` does; with `validation`, Powertools checks the
    routes' typed parameters (and loads pydantic to do so)."""
    app = _Resolver(validation)
    app.exception_handler(RequestValidationError)(_validation_response)
    app.exception_handler(Exception)(error_response)
    app.not_found()(
        lambda _: error_response(RouteNotFound("no such route: see GET /v1/agents and /v1/tasks"))
    )
    return app
