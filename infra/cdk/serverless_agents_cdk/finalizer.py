"""`Finalizer`: the finalize function, the status-change rule that feeds it, and their dead-letter queue.

StopExecution and a state machine's TimeoutSeconds skip the Cleanup state, so EventBridge's "Step
Functions Execution Status Change" events (ABORTED, TIMED_OUT, FAILED) of this deployment's state machines
bring each ending to finalize, which invokes the agent's delete function by name (`runtime.finalize`).

Two ways an ending can get lost, both ending in the dead-letter queue (alarmed in `Alarms`):
- EventBridge cannot deliver the event: it retries for up to a day (the rule target's retry policy);
- finalize fails on it (the delete failed): Lambda retries the asynchronous invocation twice, then sends
  the invocation record, with the event as `requestPayload`, to the queue (an on-failure destination).
Replaying a message is invoking finalize with that event. An event that never reaches the rule at all
is the `Sweeper`'s to find: it finalizes the same endings again from the executions' list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from serverless_agents.deployment.plan import status_change_rule

from . import nag
from .async_agent_state_machine import allow_invoking_deletes
from .event_rules import event_rule
from .handler_function import HandlerFunction, function_log_group

if TYPE_CHECKING:
    from serverless_agents.deployment.plan import FunctionPlan

    from .async_agent_state_machine import AsyncAgentStateMachine

#: State machine ARNs per rule: an event pattern is at most 4096 characters, an ARN up to ~120 here.
MACHINES_PER_RULE = 25
#: How EventBridge retries a rule's Lambda target before the dead-letter queue: its most, for a day.
#: Sensor event rules (`SensorTriggers`) deliver the same way.
TARGET_RETRY_ATTEMPTS = 185
TARGET_MAX_EVENT_AGE = Duration.hours(24)


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """A dead-letter queue as every one here is: SQS-managed encryption, TLS only, kept 14 days."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    nag.dead_letter_queue_encryption(queue)
    return queue


class Finalizer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: FunctionPlan,
        code: lambda_.Code,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        nag.queue_is_a_dead_letter_queue(self.dead_letters)
        self.handler = HandlerFunction(
            self,
            "Finalize",
            function=function,
            code=code,
            environment=environment,
            log_group=function_log_group(self, "Logs", function.log_group),
        )
        self.handler.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        self.rules: list[events.Rule] = []

    @property
    def function(self) -> lambda_.Function:
        return self.handler.function

    def watch(self, machines: Sequence[AsyncAgentStateMachine]) -> None:
        """Route the endings of `machines` here, and let finalize invoke their delete functions only."""
        if not machines:
            return
        allow_invoking_deletes(self.handler.role, machines)
        for start in range(0, len(machines), MACHINES_PER_RULE):
            chunk = machines[start : start + MACHINES_PER_RULE]
            index = start // MACHINES_PER_RULE
            rule = status_change_rule(self.handler.plan, [m.state_machine.state_machine_arn for m in chunk])
            target = targets.LambdaFunction(
                self.function,
                dead_letter_queue=self.dead_letters,
                # Cleanup of an abort must not be lost.
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=TARGET_MAX_EVENT_AGE,
            )
            construct_id = "ExecutionEnded" if index == 0 else f"ExecutionEnded{index + 1}"
            self.rules.append(event_rule(self, construct_id, rule, target))
