"""A sync agent's Lambda behind API Gateway: `POST /v1/sync/{agent}`, CreateTaskRequest ->
ExecuteTaskSyncResponseHeader (the resource with its outputs), in protobuf's JSON mapping.

Its one parameter is checked here rather than by Powertools' validation, which would load pydantic into a
function whose first invocation a caller waits for (`api.resolver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flyteidl.admin import agent_pb2

from serverless_agents.api.resolver import message_response, resolver
from serverless_agents.exceptions import AgentNotFound
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import check_agent_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    from serverless_agents.runtime.sync import SyncTarget


def create_sync_api(agent: Callable[[], SyncTarget]) -> APIGatewayRestResolver:
    """A sync agent's Lambda: `agent` returns the agent it serves (name, instance, time limit)."""
    from serverless_agents.runtime.sync import execute_sync

    app = resolver(validation=False)

    @app.post("/v1/sync/<name>")
    def run_sync(name: str) -> Response[str]:
        check_agent_name(name, field="name")
        target = agent()
        if name != target.name:
            raise AgentNotFound(f"no agent named {name!r} here (this function serves {target.name!r})")
        request = wire.from_json(agent_pb2.CreateTaskRequest, app.current_event.body)
        context = getattr(app, "lambda_context", None)
        time_left = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        return message_response(execute_sync(target, request, time_left=time_left))

    return app
