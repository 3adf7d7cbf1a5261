"""A sync agent behind API Gateway: POST /v1/sync/{agent}."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.observability import logger, metrics, tracer
from serverless_agents.http_api import create_sync_api
from serverless_agents.runtime.wiring import sync_agent
from serverless_agents.settings import current_settings

app = create_sync_api(lambda: sync_agent(current_settings()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="SyncCalls", unit=MetricUnit.Count, value=1)
    return app.resolve(event, context)
