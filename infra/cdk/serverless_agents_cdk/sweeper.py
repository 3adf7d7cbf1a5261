"""`Sweeper`: the sweeper function, and the EventBridge schedule that runs it.

The `Finalizer` cleans up after an ending from its status-change event; an event that never reaches the
status-change rule (EventBridge delivers at least once, but a rule replaced or disabled during a deploy
sees nothing) leaves the task's job running. Every `PERIOD` the sweeper (`functions/sweeper`,
`runtime.sweeper`) lists each async agent's executions that ended ABORTED, TIMED_OUT or FAILED within the
last `LOOKBACK_MINUTES`, describes each (its input names the agent) and finalizes it as finalize would:
it invokes the agent's delete function, whose cleanup claim in the tasks table makes a second cleanup a
no-op. Then it queries the tasks table's `open` index for the tasks past their bound (the manifest's
`end_within`) and ends them, naming the job that may still run; `Alarms` alarms on how many it ended.

Its role may, besides writing its log group and X-Ray:
- `states:ListExecutions` on the async agents' state machines;
- `states:DescribeExecution` on their executions (`execution:<state machine>:*`: names are task ids);
- `lambda:InvokeFunction` on their delete functions, the finalizer's grant (`allow_invoking_deletes`);
- `dynamodb:Query` on the tasks table's `open` index, `dynamodb:GetItem` and `UpdateItem` on its items.
It reads nothing else: no bucket, no other index. A deployment without async agents has no sweeper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from serverless_agents import naming
from serverless_agents import settings as env_names
from serverless_agents.endings import ENDED_STATUSES
from serverless_agents.tasks_table import OPEN_INDEX

from . import nag
from .async_agent_state_machine import allow_invoking_deletes
from .handler_function import HandlerFunction, function_log_group

if TYPE_CHECKING:
    from .async_agent_state_machine import AsyncAgentStateMachine
    from .tasks_table import TasksTable

PERIOD_MINUTES = 15
PERIOD = Duration.minutes(PERIOD_MINUTES)
#: SA_SWEEP_LOOKBACK_MINUTES: four periods, so every ending is looked at by four sweeps, and a sweep that
#: does not run or fails part-way (a throttle, a deploy, a delete that raised and stopped that sweep) is
#: made up by the next three, while the error alarm calls a person. Not longer: each sweep finalizes
#: every ending in the window again (a DescribeExecution and a delete invocation apiece, a no-op for a
#: task already cleaned up), so the window multiplies that cost. An ending lost for longer than an hour
#: is one whose sweeps all failed, and their alarms have fired.
LOOKBACK_MINUTES = 4 * PERIOD_MINUTES
MEMORY = 256
#: As the local stack makes it: a sweep lists, describes and finalizes (a synchronous delete invocation)
#: every ending of the window, one after another, where finalize handles one.
TIMEOUT = 300


class Sweeper(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        machines: Sequence[AsyncAgentStateMachine],
        tasks: TasksTable,
    ) -> None:
        super().__init__(scope, construct_id)
        name = naming.shared_function_name(deployment, "sweeper")
        self.handler = HandlerFunction(
            self,
            "Sweep",
            function_name=name,
            handler="sweeper",
            code=code,
            memory=MEMORY,
            timeout=TIMEOUT,
            environment={**environment, env_names.SWEEP_LOOKBACK_MINUTES: str(LOOKBACK_MINUTES)},
            log_group=function_log_group(self, "Logs", f"/aws/lambda/{name}"),
        )
        self._grant(machines)
        tasks.grant_index_query(self.handler.role, OPEN_INDEX)
        tasks.grant_items(self.handler.role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self.rule = events.Rule(
            self,
            "Schedule",
            rule_name=name,
            description=f"every {PERIOD_MINUTES} minutes -> sweeper: finalizes {', '.join(ENDED_STATUSES)} "
            f"executions of the last {LOOKBACK_MINUTES} minutes whose status-change event was lost, "
            "ends tasks past their bound",
            schedule=events.Schedule.rate(PERIOD),
            # A sweep not delivered within its period is the next one's to do.
            targets=[targets.LambdaFunction(self.function, max_event_age=PERIOD)],
        )

    @property
    def function(self) -> lambda_.Function:
        return self.handler.function

    def _grant(self, machines: Sequence[AsyncAgentStateMachine]) -> None:
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
