"""`Sweeper`: the sweeper function, and the EventBridge schedule that runs it.

The `Finalizer` cleans up after an ending from its status-change event; an event that never reaches the
status-change rule (EventBridge delivers at least once, but a rule replaced or disabled during a deploy
sees nothing) leaves the task's job running. Every `PERIOD` the sweeper (`functions/sweeper`,
`runtime.sweeper`) lists each async agent's executions that ended ABORTED, TIMED_OUT or FAILED within the
last minutes (period and window: `serverless_agents.deployment.plan`), describes each (its input names the
agent) and finalizes it as finalize would: it invokes the agent's delete function, whose cleanup claim in the
tasks table makes a second cleanup a no-op. Then it queries the tasks table's `open` index for the tasks past
their bound (the manifest's `end_within`) and ends them, naming the job that may still run (for a sensor task:
that its pokes stopped; its schedule is removed); `Alarms` alarms on how many it ended.

Its role may, besides writing its log group and X-Ray:
- `states:ListExecutions` on the async agents' state machines;
- `states:DescribeExecution` on their executions (`execution:<state machine>:*`: names are task ids);
- `lambda:InvokeFunction` on their delete functions, the finalizer's grant (`allow_invoking_deletes`);
- `dynamodb:Query` on the tasks table's `open` index, `dynamodb:GetItem` and `UpdateItem` on its items;
- with sensors, `scheduler:DeleteSchedule` in their schedule groups (a sensor task it ends by its bound).
It reads nothing else: no bucket, no other index. A deployment of sync agents only has no sweeper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from serverless_agents.aws.tasks_table import OPEN_INDEX
from serverless_agents.deployment.plan import SWEEP_PERIOD_MINUTES
from serverless_agents.runtime.settings import DEPLOYMENT

from . import nag
from .agent_secrets import SWEEPER_CONNECTION_ACTIONS, grant_connection_secrets
from .async_agent_state_machine import allow_invoking_deletes
from .event_rules import event_rule
from .handler_function import HandlerFunction, function_log_group

if TYPE_CHECKING:
    from serverless_agents.deployment.plan import FunctionPlan, ScheduleRule

    from .async_agent_state_machine import AsyncAgentStateMachine
    from .sensor_triggers import SensorTriggers
    from .tasks_table import TasksTable

PERIOD = Duration.minutes(SWEEP_PERIOD_MINUTES)


class Sweeper(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: FunctionPlan,
        schedule: ScheduleRule,
        code: lambda_.Code,
        environment: Mapping[str, str],
        machines: Sequence[AsyncAgentStateMachine],
        sensors: Sequence[SensorTriggers],
        tasks: TasksTable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = HandlerFunction(
            self,
            "Sweep",
            function=function,
            code=code,
            environment=environment,
            log_group=function_log_group(self, "Logs", function.log_group),
        )
        if machines:
            self._grant_executions(machines)
        if sensors:
            schedules = [s.schedules_arn for s in sensors]
            self.handler.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["scheduler:DeleteSchedule"], resources=schedules)
            )
            nag.sweeper_deletes_schedules(self.handler.role, schedules)
        if machines:  # the connection secrets no task uses any more (ConnectionSecretStore.sweep)
            self.handler.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["secretsmanager:ListSecrets"], resources=["*"])
            )
            nag.sweeper_lists_secrets(self.handler.role)
            grant_connection_secrets(self.handler.role, environment[DEPLOYMENT], SWEEPER_CONNECTION_ACTIONS)
        tasks.grant_index_query(self.handler.role, OPEN_INDEX)
        tasks.grant_items(self.handler.role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        # A sweep not delivered within its period is the next one's to do.
        self.rule = event_rule(
            self, "Schedule", schedule, targets.LambdaFunction(self.function, max_event_age=PERIOD)
        )

    @property
    def function(self) -> lambda_.Function:
        return self.handler.function

    def _grant_executions(self, machines: Sequence[AsyncAgentStateMachine]) -> None:
        role = self.handler.role
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"],
                resources=[m.state_machine.state_machine_arn for m in machines],
            )
        )
        executions = [m.executions_arn for m in machines]
        role.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=executions))
        nag.sweeper_describes_executions(role, executions)
        allow_invoking_deletes(role, machines)
