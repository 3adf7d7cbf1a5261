"""`HandlerFunction`: a Lambda the plan describes (`serverless_agents.deployment.plan.FunctionPlan`: name,
handler, memory, timeout, environment, log group), with an IAM role of its own.

Every function gets its own role, created empty: no managed policy (AWSLambdaBasicExecutionRole would allow
writing to any log group), only writes to its own log group, X-Ray (Powertools' Tracer), and whatever the
constructs that own it grant on their own resources.

An agent's functions follow two manifest keys. `tracing = true` sets `SA_TRACING`, which makes
`serverless_agents/handlers/observability.py` run Powertools' Tracer (the X-Ray SDK); Lambda's active
tracing is on either way. `snapstart = true` turns SnapStart on for published versions, publishes one on
every change of code or configuration, and points an alias (`live`) at it: `invocable` is what the state
machine, the API integration and the event rules invoke, the alias then, else the function itself.
Superseded versions are deleted, so no old snapshot stays cached (and billed); callers hold the alias,
never a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from serverless_agents.deployment.naming import SNAPSTART_ALIAS
from serverless_agents.deployment.plan import RUNTIME as RUNTIME_NAME

from . import nag

if TYPE_CHECKING:
    from serverless_agents.deployment.plan import FunctionPlan

#: The plan's runtime as CDK's object, which knows what the runtime supports (SnapStart).
RUNTIME = next(
    r for r in (lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13) if r.name == RUNTIME_NAME
)
#: Logs are kept as long as the tasks they tell about (SA_TASK_TTL_DAYS defaults to 30).
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def function_log_group(scope: Construct, construct_id: str, name: str) -> logs.LogGroup:
    """A log group named up front (`naming.agent_log_group`, `/aws/lambda/<function>`), deleted with the
    stack: a retained one would block the next deploy of the same name."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=LOG_RETENTION,
        removal_policy=RemovalPolicy.DESTROY,
    )


class HandlerFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: FunctionPlan,
        code: lambda_.Code,
        environment: Mapping[str, str],
        log_group: logs.ILogGroup,
        reserved_concurrency: int | None = None,
    ) -> None:
        """`environment`: what every function shares (`DeploymentPlan.shared_environment`)."""
        super().__init__(scope, construct_id)
        self.plan = function
        self.function_name = function.name
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function.name}: {function.description}",
        )
        snapstart = function.snapstart
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function.name,
            description=function.description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,  # the bundles' wheels are manylinux x86_64
            handler=function.handler,
            code=code,
            memory_size=function.memory,
            timeout=Duration.seconds(function.timeout),
            environment=function.environment(environment),
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snapstart else None,
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY)
            if snapstart
            else None,
        )
        self.alias: lambda_.Alias | None = None
        if snapstart:
            self.alias = lambda_.Alias(
                self, "Live", alias_name=SNAPSTART_ALIAS, version=self.function.current_version
            )
        log_group.grant_write(self.role)
        nag.xray_needs_star(self.role)
        nag.runtime_is_pinned(self.function)
        nag.function_choices(
            self.function, function.handler_name, reserved_concurrency=reserved_concurrency is not None
        )

    @property
    def invocable(self) -> lambda_.IFunction:
        """What callers invoke: the SnapStart alias, or the function itself."""
        return self.alias or self.function
