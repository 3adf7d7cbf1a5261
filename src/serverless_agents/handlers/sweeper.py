"""On a schedule: finalize executions whose status-change event was lost, and end the tasks past their
bound (see runtime.sweeper)."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, logger, metrics
from serverless_agents.runtime.settings import current_settings


@lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    # At first use: see handlers/__init__.py.
    from serverless_agents.runtime.sweeper import ENDED_BY_BOUND_METRIC
    from serverless_agents.runtime.wiring import sweeper

    settings = current_settings()
    result = sweeper(settings).sweep(timedelta(minutes=settings.sweep_lookback_minutes))
    metrics.add_metric(name="SweptDeletes", unit=MetricUnit.Count, value=result.deleted)
    metrics.add_metric(name=ENDED_BY_BOUND_METRIC, unit=MetricUnit.Count, value=len(result.ended))
    metrics.add_metric(
        name="ConnectionSecretsDeleted", unit=MetricUnit.Count, value=len(result.secrets_deleted)
    )
    if result.ended:
        logger.warning("tasks ended by their bound; their jobs may still run", extra={"tasks": result.ended})
    result.raise_for_failures()
    return result.counts()
