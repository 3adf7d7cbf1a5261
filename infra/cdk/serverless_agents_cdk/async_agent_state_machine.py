"""`AsyncAgentStateMachine`: an async agent's create / get / delete functions and its state machine.

The definition is `statemachines/async_agent.asl.json`, rendered by
`serverless_agents.deployment.statemachine`'s `agent_definition` (which the local stack calls too) with the
functions' ARNs as CloudFormation tokens: what runs on moto is what deploys. Its `TimeoutSeconds` is the
manifest's `execution_timeout`.

Execution logs at level ALL without execution data: every state's timing lands in one log group for Logs
Insights (where a task spent its time, which get failed), while the task's inputs and outputs, Flyte data
that may be sensitive, stay out of the logs (the execution history and the tasks table hold them). The
backoff keeps a task to few transitions, so logging all of them costs little.

An agent that declares events (`serverless_agents.deployment.job_events`, `PlannedAgent.listens`) gets one
EventBridge rule per pattern targeting its get function (with the finalizer's retry policy and a dead-letter
queue of its own, alarmed), and its get function may: read its own tasks (the count of events before it asks
the agent), query its own keys of the `waking` index (the task an event's job id belongs to), and send task
success to waits of its own state machine only (`states:SendTaskSuccess`, by the state machine's ARN built
from its name: the resource itself depends on the function). A lost event costs one poll wait, no more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from serverless_agents.aws.tasks_table import WAKE_INDEX
from serverless_agents.deployment.statemachine import agent_definition
from serverless_agents.runtime.settings import DEPLOYMENT

from . import nag
from .agent_permissions import grant_agent_permissions
from .agent_secrets import grant_agent_secrets, grant_connection_secrets
from .event_rules import event_rule
from .handler_function import LOG_RETENTION, HandlerFunction, function_log_group

if TYPE_CHECKING:
    from serverless_agents.deployment.naming import FunctionRole
    from serverless_agents.deployment.plan import PlannedAgent

    from .payload_bucket import PayloadBucket
    from .tasks_table import TasksTable


def allow_invoking_deletes(role: iam.IRole, machines: Sequence[AsyncAgentStateMachine]) -> None:
    """`lambda:InvokeFunction` on these agents' delete functions, and on no other function: what
    `runtime.finalize.Finalizer.finalize` calls, from finalize (`Finalizer`) and the sweeper (`Sweeper`)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["lambda:InvokeFunction"],
            resources=[m.delete_function.function_arn for m in machines],
        )
    )


class AsyncAgentStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        agent: PlannedAgent,
        code: lambda_.Code,
        environment: Mapping[str, str],
        tasks: TasksTable,
        payloads: PayloadBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.agent = agent
        assert agent.state_machine is not None  # every async agent has one
        self.state_machine_name = agent.state_machine
        self.log_group = function_log_group(self, "Logs", agent.log_group)
        self.functions: dict[FunctionRole, HandlerFunction] = {}
        for role, planned in agent.functions.items():
            function = HandlerFunction(
                self,
                role.title(),
                function=planned,
                code=code,
                environment=environment,
                log_group=self.log_group,
            )
            # What runtime.async_steps calls: create reads the task (a job an earlier attempt recorded);
            # every step writes its progress with conditional updates, which return what they need (get:
            # the task's current execution, when it continues as a new one). Only on this agent's own
            # tasks: another agent's code can neither read nor forge them.
            # (tests/rehearsal/test_rehearsal_iam.py records the calls each deployed function makes.)
            # A listening get reads the task too: the count of its events, before it asks the agent.
            reads = ("dynamodb:GetItem",) if role == "create" or (role == "get" and agent.listens) else ()
            tasks.grant_agent_items(function.role, agent.name, *reads, "dynamodb:UpdateItem")
            # Its own agent's payloads only: create and get read a request the api offloaded, get writes
            # the outputs Flyte will receive, and each keeps the agent's own state (the example's jobs).
            if role in ("create", "get"):
                payloads.grant(function.role, ["s3:GetObject"], "requests", [agent.name])
            if role == "get":
                payloads.grant(function.role, ["s3:PutObject"], "outputs", [agent.name])
            payloads.grant(function.role, ["s3:GetObject", "s3:PutObject"], "state", [agent.name])
            grant_agent_secrets(function.role, agent.settings.secret_ids.values())
            # The connection secrets Flyte 2's executor sent for this agent's tasks (create, get, delete).
            grant_connection_secrets(
                function.role, environment[DEPLOYMENT], ["secretsmanager:GetSecretValue"], agent.name
            )
            grant_agent_permissions(function.role, agent.name, agent.settings.permissions)
            self.functions[role] = function

        name = self.state_machine_name
        state_machine_arn = Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.dead_letters: sqs.Queue | None = None
        self.rules: list[events.Rule] = []
        if agent.listens:
            self._listen(agent, tasks, state_machine_arn)
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            # The prefix AWS recommends for vended logs: no resource policy per log group.
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"state machine {name}: invokes its create, get and delete functions, and starts "
            "its own next execution (continue as new)",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[f.invocable.function_arn for f in self.functions.values()],
            )
        )
        # The Continue state starts a successor of this very state machine (`$$.StateMachine.Id`): its ARN
        # is built from its name, not from the state machine resource, which would depend on this role.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn])
        )
        definition = agent_definition(
            agent,
            Stack.of(self).partition,
            {role: function.invocable.function_arn for role, function in self.functions.items()},
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            role=self.role,
            logs=sfn.LogOptions(
                destination=self.execution_logs, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
            tracing_enabled=True,
        )
        nag.state_machine_log_delivery_and_xray(self.role)

    def _listen(self, agent: PlannedAgent, tasks: TasksTable, state_machine_arn: str) -> None:
        """The agent's event rules -> its get function, and what that function needs to end a wait."""
        # Here, not at the top: finalizer imports this module (allow_invoking_deletes).
        from .finalizer import TARGET_MAX_EVENT_AGE, TARGET_RETRY_ATTEMPTS, dead_letter_queue

        get = self.functions["get"]
        tasks.grant_index_query(get.role, WAKE_INDEX, agent=agent.name)
        get.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=[state_machine_arn])
        )
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        nag.event_rules_dead_letter_queue(self.dead_letters)
        for number, rule in enumerate(agent.rules):
            target = targets.LambdaFunction(
                get.invocable,
                dead_letter_queue=self.dead_letters,
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=TARGET_MAX_EVENT_AGE,
            )
            self.rules.append(event_rule(self, f"Event{number}", rule, target))

    @property
    def delete_function(self) -> lambda_.IFunction:
        """What finalize and the sweeper invoke: the delete function's SnapStart alias, or itself."""
        return self.functions["delete"].invocable

    @property
    def executions_arn(self) -> str:
        """Every execution of this state machine: execution names are task ids, known only when a task is
        created (`arn:<partition>:states:<region>:<account>:execution:<state machine>:*`)."""
        return Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
