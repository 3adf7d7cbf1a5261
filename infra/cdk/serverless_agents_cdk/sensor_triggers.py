"""`SensorTriggers`: a sensor's poke function and what invokes it; `SchedulerRole`: how schedules invoke.

A sensor task (`serverless_agents.runtime.sensors`) waits without running anything: the api registers it
with an EventBridge Scheduler schedule in its sensor's schedule group, named after the task and targeting
the poke function, and invokes the poke function once. Per sensor agent this construct makes:

- the poke function (`<deployment>-<agent>-poke`, `functions/poke/handler.py`), logging to the agent's log
  group, with its own tasks in the table (read a task, write its pokes and ending) and `dynamodb:Query` on its
  own keys of the `watching` index only (an event finds its tasks there), its own agent's request payloads
  (read), DeleteSchedule in its own group (each ending removes its task's schedule), the agent's secrets and
  the manifest's `permissions`. Everything invokes it asynchronously, one invocation per waiting task and
  period and per matching event, so it has a reserved concurrency (`POKE_RESERVED_CONCURRENCY`): a burst of
  events or of waiting tasks waits in Lambda's queue instead of taking the account's concurrency from the api
  and the agents. An invocation that kept failing, or waited past `POKE_MAX_EVENT_AGE`, goes to the sensor's
  dead-letter queue (an on-failure destination);
- the schedule group `<deployment>-<agent>`, empty at deploy: the api fills it, one schedule per task;
- one EventBridge rule per `events` pattern of the manifest, on the default bus, passed to EventBridge as
  written there (the local stack puts the same pattern), targeting the poke function with the
  finalizer's retry policy and the same dead-letter queue. A lost event or poke costs little: the task's
  schedule pokes it within one period anyway. The queue is alarmed all the same, because messages there
  mean pokes are not keeping up or events are not arriving (a deleted function, a broken permission).

The schedules' role is shared (`SchedulerRole`): EventBridge Scheduler assumes it for schedules in this
deployment's sensor groups only (trust conditions `aws:SourceAccount`, `aws:SourceArn`), and it may invoke
the poke functions and nothing else. The functions read its ARN in SA_SCHEDULER_ROLE_ARN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from serverless_agents.aws.tasks_table import WATCH_INDEX

from . import nag
from .agent_permissions import grant_agent_permissions
from .agent_secrets import grant_agent_secrets
from .event_rules import event_rule
from .finalizer import TARGET_MAX_EVENT_AGE, TARGET_RETRY_ATTEMPTS, dead_letter_queue
from .handler_function import HandlerFunction, function_log_group

if TYPE_CHECKING:
    from serverless_agents.deployment.plan import PlannedAgent

    from .payload_bucket import PayloadBucket
    from .tasks_table import TasksTable

SCHEDULER_SERVICE = "scheduler.amazonaws.com"
#: Concurrent pokes per sensor: a poke is a table read and write and the sensor's check (a HeadObject for a
#: FileSensor), a fraction of a second, so 10 serve thousands of waiting tasks a minute. Context
#: `poke_reserved_concurrency` changes it (0: none, for accounts whose quota leaves nothing to reserve).
POKE_RESERVED_CONCURRENCY = 10
#: A poke waiting longer than this (throttled) is dropped to the dead-letter queue: the task's schedule has
#: poked it again meanwhile, so running it late would only add to the backlog.
POKE_MAX_EVENT_AGE = Duration.hours(1)
#: Retries of a poke that failed (the table or the payload bucket unavailable): Lambda's default.
POKE_RETRY_ATTEMPTS = 2


def schedule_group_arn(scope: Construct, group: str) -> str:
    return Stack.of(scope).format_arn(
        service="scheduler",
        resource="schedule-group",
        resource_name=group,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def schedules_arn(scope: Construct, group: str) -> str:
    """Every schedule of `group`: schedule names are task ids, known only when a task is created."""
    return Stack.of(scope).format_arn(
        service="scheduler",
        resource="schedule",
        resource_name=f"{group}/*",
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


class SchedulerRole(Construct):
    """The role EventBridge Scheduler assumes to run sensor schedules: it invokes poke functions only."""

    def __init__(
        self, scope: Construct, construct_id: str, *, deployment: str, groups: Sequence[str]
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_SERVICE,
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    # Only schedules in this deployment's sensor groups (AWS scopes this by group ARN).
                    "ArnEquals": {"aws:SourceArn": [schedule_group_arn(self, g) for g in groups]},
                },
            ),
            description=f"{deployment} sensor schedules: EventBridge Scheduler invokes the poke functions",
        )

    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    def allow_invoking(self, functions: Sequence[lambda_.IFunction]) -> None:
        if functions:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[f.function_arn for f in functions]
                )
            )


class SensorTriggers(Construct):
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
        reserved_concurrency: int | None = POKE_RESERVED_CONCURRENCY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.agent = agent
        self.log_group = function_log_group(self, "Logs", agent.log_group)
        self.handler = HandlerFunction(
            self,
            "Poke",
            function=agent.function("poke"),
            code=code,
            environment=environment,
            log_group=self.log_group,
            reserved_concurrency=reserved_concurrency,
        )
        self.dead_letters = dead_letter_queue(self, "DeadLetters")
        nag.sensor_dead_letter_queue(self.dead_letters)
        self.handler.function.configure_async_invoke(
            retry_attempts=POKE_RETRY_ATTEMPTS,
            max_event_age=POKE_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letters),
        )
        role = self.handler.role
        # What runtime.sensors calls: read a task, record its pokes and its ending (conditional updates),
        # find the tasks an event concerns on the sparse index, read a request offloaded to the bucket.
        # This sensor's own tasks only, in the table and in the index (their keys start with its name).
        tasks.grant_agent_items(role, agent.name, "dynamodb:GetItem", "dynamodb:UpdateItem")
        tasks.grant_index_query(role, WATCH_INDEX, agent=agent.name)
        payloads.grant(role, ["s3:GetObject"], "requests", [agent.name])

        assert agent.schedule_group is not None  # every sensor has one
        self.group_name = agent.schedule_group
        self.schedule_group = scheduler.ScheduleGroup(
            self,
            "ScheduleGroup",
            schedule_group_name=self.group_name,
            # Its schedules belong to tasks of this deployment: nothing to keep once it is gone.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.schedules_arn = schedules_arn(self, self.group_name)
        role.add_to_policy(
            iam.PolicyStatement(actions=["scheduler:DeleteSchedule"], resources=[self.schedules_arn])
        )
        nag.poke_deletes_own_schedules(role, self.schedules_arn)
        grant_agent_secrets(role, agent.settings.secret_ids.values())
        grant_agent_permissions(role, agent.name, agent.settings.permissions)

        self.rules: list[events.Rule] = []
        for number, rule in enumerate(agent.rules):
            target = targets.LambdaFunction(
                self.handler.invocable,
                dead_letter_queue=self.dead_letters,
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=TARGET_MAX_EVENT_AGE,
            )
            self.rules.append(event_rule(self, f"Event{number}", rule, target))

    @property
    def function(self) -> lambda_.Function:
        return self.handler.function
