"""State machine step: start the agent's job for one task."""

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, log_task, metrics
from serverless_agents.handlers.snapstart import prime
from serverless_agents.runtime.settings import current_settings

if TYPE_CHECKING:
    from serverless_agents.runtime.async_steps import TaskState

prime("serverless_agents.runtime.wiring")


@lambda_handler()
def handler(event: "TaskState", context: LambdaContext) -> dict[str, Any]:
    from serverless_agents.runtime.wiring import async_steps  # at first use: see handlers/__init__.py

    log_task(event.get("task_id"))
    result = async_steps(current_settings()).create(event)
    metrics.add_metric(name="JobsCreated", unit=MetricUnit.Count, value=1)
    return dict(result)
