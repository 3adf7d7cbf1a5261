"""`ServerlessAgentsStack`: a manifest's whole deployment, wired from one construct per concern.

Shared: `TasksTable`, `PayloadBucket`, the api function behind `AgentsApi`, the `Finalizer`, `Alarms` and a
`Dashboard`, with async agents the `Sweeper`, and with sensors the `SchedulerRole`. Per async agent an
`AsyncAgentStateMachine`, per sync agent a `SyncAgentFunction`, per sensor `SensorTriggers`. Every
function, state machine, rule and schedule group, with its name, handler, size and environment, is the
plan's (`serverless_agents.deployment.plan`), which the local stack (`serverless_agents.local.stack`) makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from serverless_agents.deployment.plan import Place
from serverless_agents.runtime.settings import DEFAULT_TASK_TTL_DAYS

from . import nag
from .agent_secrets import API_CONNECTION_ACTIONS, grant_connection_secrets
from .agents_api import AgentsApi
from .alarms import Alarms
from .async_agent_state_machine import AsyncAgentStateMachine
from .bundles import CORE, agent_family
from .dashboard import Dashboard
from .finalizer import Finalizer
from .handler_function import HandlerFunction, function_log_group
from .payload_bucket import PayloadBucket
from .sensor_triggers import POKE_RESERVED_CONCURRENCY, SCHEDULER_SERVICE, SchedulerRole, SensorTriggers
from .sweeper import Sweeper
from .sync_agent_function import SyncAgentFunction
from .tasks_table import TasksTable

if TYPE_CHECKING:
    from constructs import Construct

    from serverless_agents.deployment.plan import DeploymentPlan, PlannedAgent


def construct_id(agent: str) -> str:
    """`my-agent` -> `MyAgent`: agent names are lowercase with hyphens, construct ids read better so."""
    return "".join(part.capitalize() for part in agent.split("-"))


class ServerlessAgentsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        plan: DeploymentPlan,
        code_paths: Mapping[str, Path],
        api_throttle_rate: float = 100,
        api_throttle_burst: int = 200,
        poke_reserved_concurrency: int | None = POKE_RESERVED_CONCURRENCY,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, stack_id, description=description)
        self.plan = plan
        deployment = plan.deployment
        # One asset per folder, however many families share it (all of them, with bundling=skip).
        codes: dict[Path, lambda_.Code] = {}
        for path in code_paths.values():
            # Bundles ship their bytecode (bundles.compile_bytecode): __pycache__ is part of the code.
            codes.setdefault(path, lambda_.Code.from_asset(str(path)))

        def code(family: str) -> lambda_.Code:
            return codes[code_paths[family]]

        def agent_code(agent: PlannedAgent) -> lambda_.Code:
            return code(agent_family(plan, agent))

        self.tasks = TasksTable(self, "TasksTable")
        nag.tasks_table_key(self.tasks.table)
        self.payloads = PayloadBucket(self, "PayloadBucket", task_ttl_days=DEFAULT_TASK_TTL_DAYS)
        # Only a deployment with sensors has schedules, and so a role for them to run as.
        self.scheduler_role: SchedulerRole | None = None
        if plan.sensor_agents:
            self.scheduler_role = SchedulerRole(
                self, "SchedulerRole", deployment=deployment, groups=plan.schedule_groups
            )
        # SA_MANIFEST stays unset: the bundle carries the manifest at $LAMBDA_TASK_ROOT/agents.toml.
        environment = plan.shared_environment(
            Place(self.partition, self.region, self.account),
            tasks_table=self.tasks.table.table_name,
            payload_bucket=self.payloads.bucket.bucket_name,
            scheduler_role_arn=self.scheduler_role.role_arn if self.scheduler_role else None,
        )
        self.api_function = HandlerFunction(
            self,
            "ApiFunction",
            function=plan.api,
            code=code(CORE),
            environment=environment,
            log_group=function_log_group(self, "ApiFunctionLogs", plan.api.log_group),
        )
        self.finalizer = Finalizer(
            self, "Finalizer", function=plan.finalize, code=code(CORE), environment=environment
        )
        self.async_agents = [
            AsyncAgentStateMachine(
                self,
                f"Async{construct_id(agent.name)}",
                agent=agent,
                code=agent_code(agent),
                environment=environment,
                tasks=self.tasks,
                payloads=self.payloads,
            )
            for agent in plan.async_agents
        ]
        self.sync_agents = [
            SyncAgentFunction(
                self,
                f"Sync{construct_id(agent.name)}",
                agent=agent,
                code=agent_code(agent),
                environment=environment,
            )
            for agent in plan.sync_agents
        ]
        self.sensors = [
            SensorTriggers(
                self,
                f"Sensor{construct_id(agent.name)}",
                agent=agent,
                code=agent_code(agent),
                environment=environment,
                tasks=self.tasks,
                payloads=self.payloads,
                reserved_concurrency=poke_reserved_concurrency,
            )
            for agent in plan.sensor_agents
        ]
        if self.scheduler_role is not None:
            # Schedules target the SnapStart alias of a poke function that has one (`naming.invocable_name`).
            self.scheduler_role.allow_invoking([s.handler.invocable for s in self.sensors])
        self._grant_api(self.api_function)
        self.finalizer.watch(self.async_agents)
        # Endings whose status-change event was lost, tasks past their bound (async or sensor).
        self.sweeper: Sweeper | None = None
        if plan.sweeper is not None and plan.sweep_rule is not None:
            self.sweeper = Sweeper(
                self,
                "Sweeper",
                function=plan.sweeper,
                schedule=plan.sweep_rule,
                code=code(CORE),
                environment=environment,
                machines=self.async_agents,
                sensors=self.sensors,
                tasks=self.tasks,
            )
        self.api = AgentsApi(
            self,
            "Api",
            deployment=deployment,
            api_function=self.api_function.function,
            sync_functions={s.agent.name: s.handler.invocable for s in self.sync_agents},
            integration_timeout=plan.api_timeout,
            throttle_rate=api_throttle_rate,
            throttle_burst=api_throttle_burst,
        )

        handlers = [
            self.api_function,
            self.finalizer.handler,
            *([self.sweeper.handler] if self.sweeper is not None else []),
            *(f for a in self.async_agents for f in a.functions.values()),
            *(s.handler for s in self.sync_agents),
            *(s.handler for s in self.sensors),
        ]
        self.alarms = Alarms(
            self,
            "Alarms",
            deployment=deployment,
            functions=handlers,
            state_machines=[(a.state_machine_name, a.state_machine) for a in self.async_agents],
            dead_letters=self._dead_letters(),
            rest_api=self.api.rest_api,
        )
        Dashboard(
            self,
            "Dashboard",
            deployment=deployment,
            rest_api=self.api.rest_api,
            shared=[self.api_function, self.finalizer.handler],
            sweeper=self.sweeper.handler if self.sweeper is not None else None,
            dead_letters=self._dead_letters(),
            async_agents=self.async_agents,
            sync_agents=self.sync_agents,
            sensors=self.sensors,
        )
        self._outputs()
        nag.log_groups_without_customer_key(self)

    def _dead_letters(self) -> list[tuple[str, sqs.IQueue]]:
        """Each dead-letter queue with the name its alarm and graph go by."""
        queues: list[tuple[str, sqs.IQueue]] = [
            (f"{self.plan.deployment}-finalize-dead-letters", self.finalizer.dead_letters)
        ]
        queues += [
            (f"{self.plan.deployment}-{s.agent.name}-dead-letters", s.dead_letters) for s in self.sensors
        ]
        queues += [
            (f"{self.plan.deployment}-{a.agent.name}-dead-letters", a.dead_letters)
            for a in self.async_agents
            if a.dead_letters is not None
        ]
        return queues

    def _grant_api(self, api: HandlerFunction) -> None:
        """What runtime.service calls: the tasks table, the payload keys it writes (requests of async agents
        and sensors) and reads (outputs of async agents), the agents' executions, and the sensors' schedules
        (create, delete) and poke functions (the first poke of each task)."""
        self.tasks.grant_items(api.role, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        async_agents = [a.agent.name for a in self.async_agents]
        self.payloads.grant(
            api.role, ["s3:PutObject"], "requests", async_agents + [s.agent.name for s in self.sensors]
        )
        self.payloads.grant(api.role, ["s3:GetObject"], "outputs", async_agents)
        if self.async_agents:  # a Flyte 2 executor's Connection.secrets (runtime.service.TaskService.create)
            grant_connection_secrets(api.role, self.plan.deployment, API_CONNECTION_ACTIONS)
        if self.async_agents:
            self._grant_api_executions(api)
        if self.sensors and self.scheduler_role is not None:
            schedules = [s.schedules_arn for s in self.sensors]
            api.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["scheduler:CreateSchedule", "scheduler:DeleteSchedule"], resources=schedules
                )
            )
            nag.api_manages_schedules(api.role, schedules)
            api.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.scheduler_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
                )
            )
            api.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[s.handler.invocable.function_arn for s in self.sensors],
                )
            )
        self._grant_api_task_records(api)

    def _grant_api_executions(self, api: HandlerFunction) -> None:
        api.role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[a.state_machine.state_machine_arn for a in self.async_agents],
            )
        )
        executions = [a.executions_arn for a in self.async_agents]
        api.role.add_to_policy(iam.PolicyStatement(actions=["states:StopExecution"], resources=executions))
        nag.api_stops_executions(api.role, executions)

    def _grant_api_task_records(self, api: HandlerFunction) -> None:
        """GetTaskLogs and GetTaskMetrics: FilterLogEvents on the log groups of the agents that have tasks
        (async agents and sensors; sync agents have none) and the history of the async agents' executions.
        Nothing else: not the api's own log group, not another deployment's."""
        log_groups = [a.log_group.log_group_arn for a in self.async_agents] + [
            s.log_group.log_group_arn for s in self.sensors
        ]
        if log_groups:
            api.role.add_to_policy(
                iam.PolicyStatement(actions=["logs:FilterLogEvents"], resources=log_groups)
            )
        executions = [a.executions_arn for a in self.async_agents]
        if executions:
            api.role.add_to_policy(
                iam.PolicyStatement(actions=["states:GetExecutionHistory"], resources=executions)
            )
        nag.api_reads_task_records(api.role, log_groups + executions)

    def _outputs(self) -> None:
        CfnOutput(
            self,
            "ApiUrl",
            value=self.api.url,
            description="the HTTP API: serverless-agents adapter --api <ApiUrl>",
        )
        for agent in self.async_agents:
            CfnOutput(
                self,
                f"StateMachineArn{construct_id(agent.agent.name)}",
                value=agent.state_machine.state_machine_arn,
                description=f"agent {agent.agent.name}: its state machine",
            )
        CfnOutput(self, "TasksTableName", value=self.tasks.table.table_name)
        CfnOutput(self, "PayloadBucketName", value=self.payloads.bucket.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn, description="subscribe to alarms")
        CfnOutput(
            self,
            "DeadLetterQueueUrl",
            value=self.finalizer.dead_letters.queue_url,
            description="endings whose cleanup did not run: replay by invoking finalize with the event",
        )
        for sensor in self.sensors:
            CfnOutput(
                self,
                f"SensorDeadLetterQueueUrl{construct_id(sensor.agent.name)}",
                value=sensor.dead_letters.queue_url,
                description=f"sensor {sensor.agent.name}: events its rules could not deliver and pokes that "
                "kept failing or waited too long (replay: invoke its poke function with the event)",
            )
