"""The get function: the state machine's Get step (ask the agent how its job is doing; returns the next
wait), and, for an agent that declares events, its Listen step (park the wait's task token) and the
target of its EventBridge rules (end the wait of the task whose job an event names): see
runtime/async_steps.py."""

from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from serverless_agents.handlers.observability import lambda_handler, log_task, metrics
from serverless_agents.handlers.snapstart import prime
from serverless_agents.runtime.settings import current_settings

if TYPE_CHECKING:
    from serverless_agents.runtime.async_steps import ListenEvent, TaskState

prime("serverless_agents.runtime.wiring")


@lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from serverless_agents.runtime.wiring import async_steps  # at first use: see handlers/__init__.py

    steps = async_steps(current_settings())
    if "detail-type" in event:  # an EventBridge event, from one of the agent's rules
        woken = steps.wake(event)
        metrics.add_metric(name="WaitsWoken", unit=MetricUnit.Count, value=woken)
        return {"woken": woken}
    log_task(event.get("task_id"))
    if "wait_token" in event:  # the Listen state: its answer is the token, sent back by an event or itself
        steps.listen(cast("ListenEvent", event))
        return {}
    result = steps.get(cast("TaskState", event))
    metrics.add_metric(name="Polls", unit=MetricUnit.Count, value=1)
    if result["done"]:
        metrics.add_metric(
            name=f"Jobs{result['phase'].title().replace('_', '')}", unit=MetricUnit.Count, value=1
        )
    return dict(result)
