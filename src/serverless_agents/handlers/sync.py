"""A sync agent behind API Gateway: POST /v1/sync/{agent}."""

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import API_REQUEST_ID, lambda_handler, metrics
from serverless_agents.handlers.snapstart import prime
from serverless_agents.runtime.settings import current_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

prime("serverless_agents.api.sync_api", "serverless_agents.runtime.wiring")


@functools.cache
def app() -> "APIGatewayRestResolver":
    """The resolver, made at first use (see handlers/__init__.py)."""
    from serverless_agents.api.sync_api import create_sync_api
    from serverless_agents.runtime.wiring import sync_agent

    return create_sync_api(lambda: sync_agent(current_settings()))


@lambda_handler(correlation_id_path=API_REQUEST_ID)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="SyncCalls", unit=MetricUnit.Count, value=1)
    return app().resolve(event, context)
