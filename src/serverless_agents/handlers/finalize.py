"""EventBridge "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) -> the agent's delete."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, logger, metrics
from serverless_agents.runtime.settings import current_settings


@lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from serverless_agents.runtime.wiring import finalizer  # at first use: handlers/__init__.py

    detail = event["detail"]
    logger.append_keys(task_id=detail.get("name"), status=detail.get("status"))
    result = finalizer(current_settings()).finalize(detail)
    metrics.add_metric(
        name=f"Executions{str(detail.get('status', '')).title()}", unit=MetricUnit.Count, value=1
    )
    return result
