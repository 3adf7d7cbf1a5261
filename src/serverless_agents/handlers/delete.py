"""Cleanup: delete the agent's job once, for the Cleanup state and for the finalize Lambda."""

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, log_task, metrics
from serverless_agents.handlers.snapstart import prime
from serverless_agents.runtime.settings import current_settings

if TYPE_CHECKING:
    from serverless_agents.runtime.async_steps import DeleteEvent

prime("serverless_agents.runtime.wiring")


@lambda_handler()
def handler(event: "DeleteEvent", context: LambdaContext) -> dict[str, Any]:
    from serverless_agents.runtime.async_steps import CleanupReason  # at first use: handlers/__init__.py
    from serverless_agents.runtime.wiring import async_steps

    log_task(event.get("task_id"))
    deleted = async_steps(current_settings()).delete(event["task_id"], CleanupReason.from_event(event))
    metrics.add_metric(name="JobsDeleted", unit=MetricUnit.Count, value=int(deleted))
    return {"deleted": deleted}
