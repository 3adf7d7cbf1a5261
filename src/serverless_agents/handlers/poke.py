"""A sensor's poke function: invoked by its tasks' schedules, by EventBridge rules, and at registration."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, logger, metrics
from serverless_agents.handlers.snapstart import prime
from serverless_agents.runtime.settings import current_settings

prime("serverless_agents.runtime.wiring")


@lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from serverless_agents.runtime.wiring import sensor_steps  # at first use: see handlers/__init__.py

    logger.append_keys(trigger=event.get("detail-type", "schedule"))
    result = sensor_steps(current_settings()).handle(event)
    metrics.add_metric(name="Pokes", unit=MetricUnit.Count, value=result["poked"])
    return result
