"""On a schedule: finalize executions whose status-change event was lost (see runtime.sweeper)."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.observability import capture_lambda_handler, logger, metrics
from serverless_agents.settings import current_settings


@logger.inject_lambda_context
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    from serverless_agents.runtime.sweeper import sweep  # at first use: see functions/__init__.py
    from serverless_agents.runtime.wiring import async_state_machine_arns

    settings = current_settings()
    lookback = timedelta(minutes=settings.sweep_lookback_minutes)
    result = sweep(async_state_machine_arns(settings), settings.deployment, lookback)
    metrics.add_metric(name="SweptDeletes", unit=MetricUnit.Count, value=result["deleted"])
    return result
