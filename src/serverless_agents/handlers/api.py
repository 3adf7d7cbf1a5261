"""The HTTP API behind API Gateway: tasks and agents (see serverless_agents.api.http_api)."""

import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import API_REQUEST_ID, lambda_handler, metrics
from serverless_agents.runtime.settings import current_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver


_per_thread = threading.local()


def app() -> "APIGatewayRestResolver":
    """The resolver, made at first use (see handlers/__init__.py). One per thread: a resolver holds the
    request it serves; on Lambda a container serves one at a time on its one thread, and the local stack
    serves this function's invocations at once, one per thread, as Lambda would in as many containers."""
    resolver: APIGatewayRestResolver | None = getattr(_per_thread, "app", None)
    if resolver is None:
        from serverless_agents.api.http_api import create_api
        from serverless_agents.runtime.wiring import task_service

        resolver = _per_thread.app = create_api(lambda: task_service(current_settings()))
    return resolver


@lambda_handler(correlation_id_path=API_REQUEST_ID)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
    return app().resolve(event, context)
