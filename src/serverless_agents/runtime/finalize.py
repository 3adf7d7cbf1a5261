"""Cleanup for executions that ended without passing the Cleanup state.

StopExecution (abort) and the state machine's TimeoutSeconds skip every remaining state, so the agent's
delete must be run from outside: EventBridge's "Step Functions Execution Status Change" event brings the
ending here, and we invoke the agent's delete Lambda, which claims cleanup in the tasks table (so it runs
at most once, and never for a job that ended on its own). Invoking the agent's own function keeps this
Lambda free of every agent's dependencies.

A task may be a chain of executions (continue as new): an execution that continued ends SUCCEEDED, which
is no ending of the task and never reaches here; any execution of the chain that ends ABORTED, TIMED_OUT or
FAILED ends the task, whichever it is (a stop or a timeout during Continue, the successor's own ending).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from serverless_agents import aws
from serverless_agents.deployment.naming import agent_function_name, invocable_name
from serverless_agents.exceptions import InvalidRequest, ServiceUnavailable
from serverless_agents.runtime.endings import EXECUTION_ENDINGS

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from serverless_agents.runtime.async_steps import DeleteEvent


class Finalizer:
    """Invokes `<deployment>-<agent>-delete` for each ended execution, with the Lambda client given: its
    SnapStart alias for the agents in `snapstart`."""

    def __init__(
        self, deployment: str, lambda_client: LambdaClient, snapstart: frozenset[str] = frozenset()
    ) -> None:
        self.deployment = deployment
        self._lambda = lambda_client
        self._snapstart = snapstart

    def finalize(self, detail: dict[str, Any]) -> dict[str, Any]:
        """Handle one status-change event's `detail`; returns what the delete function answered."""
        status = detail.get("status")
        ending = EXECUTION_ENDINGS.get(status) if isinstance(status, str) else None
        if ending is None:
            return {"ignored": f"status {status!r}"}
        input_json = detail.get("input") or "{}"
        try:
            execution_input = json.loads(input_json)
            agent = execution_input["agent"]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidRequest("detail.input", f"not an execution of an agent state machine: {e}") from e
        # Every execution of a task's chain carries its task id; the first is also named after it.
        task_id = execution_input.get("task_id", detail.get("name"))
        if not isinstance(task_id, str):
            raise InvalidRequest(
                "detail.name", "not an execution of an agent state machine: no execution name"
            )
        message = ending.message(detail.get("error"), detail.get("cause"))
        event: DeleteEvent = {"task_id": task_id, "phase": ending.phase.name, "message": message}
        with aws.transient_errors_as_unavailable("Lambda"):
            response = self._lambda.invoke(
                FunctionName=invocable_name(
                    agent_function_name(self.deployment, agent, "delete"), agent in self._snapstart
                ),
                Payload=json.dumps(event).encode(),
            )
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            # Raise so EventBridge's retry policy (or the sweeper) tries again; cleanup was released.
            raise ServiceUnavailable(f"delete for task {task_id} failed: {answer}")
        return {"task_id": task_id, "deleted": answer}
